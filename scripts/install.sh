#!/bin/sh
# Install whatever is missing, idempotently; quick (about a second) when everything is there.
#   1. Debian packages on the host (never from sid: the host's apt sources are left alone)
#   2. the Asterisk 22 root: a minimal Debian sid tree built with mmdebstrap, run chrooted
#   3. PostgreSQL running, with the `hotline` role the tests and production URL use
#   4. the project's venv (.venv), reinstalled when pyproject.toml changes
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (apt-get, mmdebstrap, chroot, mounts)" >&2; exit 1; }

# ---------------------------------------------------------------- 1. host packages
PKGS="mmdebstrap sip-tester mosquitto espeak-ng libespeak-ng1 sox libsox-fmt-base libportaudio2 \
postgresql postgresql-client iproute2 util-linux procps ca-certificates \
chromium chromium-driver fonts-wqy-microhei fail2ban nftables acl baresip-core"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# ---------------------------------------------------------------- 2. Asterisk 22 chroot
AST_ROOT=${HOTLINE_AST_ROOT:-/var/lib/hotline/asterisk-root} sh scripts/install-asterisk-chroot.sh

# ---------------------------------------------------------------- 2b. the CTI's user
# `hotline up` runs as root but starts the CTI (web desktop, FastAGI, recorder) as `hotline`,
# uid/gid 597 (keep in step with hotline/stack.py CTI_USER), no shell, no home of its own (the
# CTI's HOME is the state dir), in hotline-rec (596, made above) to read and prune recordings.
CTI_USER=hotline
CTI_ID=597
cur=$(awk -F: -v n="$CTI_USER" '$1==n{print $3}' /etc/group)
if [ -z "$cur" ]; then
    other=$(awk -F: -v g="$CTI_ID" '$3==g{print $1}' /etc/group)
    [ -z "$other" ] || { echo "gid $CTI_ID is taken by $other; cannot create group $CTI_USER" >&2; exit 1; }
    groupadd --system --gid "$CTI_ID" "$CTI_USER"
elif [ "$cur" != "$CTI_ID" ]; then
    echo "group $CTI_USER has gid $cur, not $CTI_ID" >&2; exit 1
fi
cur=$(awk -F: -v n="$CTI_USER" '$1==n{print $3}' /etc/passwd)
if [ -z "$cur" ]; then
    other=$(awk -F: -v u="$CTI_ID" '$3==u{print $1}' /etc/passwd)
    [ -z "$other" ] || { echo "uid $CTI_ID is taken by $other; cannot create user $CTI_USER" >&2; exit 1; }
    useradd --system --uid "$CTI_ID" --gid "$CTI_ID" --groups hotline-rec --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin --comment "hotline CTI" "$CTI_USER"
elif [ "$cur" != "$CTI_ID" ]; then
    echo "user $CTI_USER has uid $cur, not $CTI_ID" >&2; exit 1
elif ! id -nG "$CTI_USER" | tr ' ' '\n' | grep -qx hotline-rec; then
    usermod --append --groups hotline-rec "$CTI_USER"
fi

# ---------------------------------------------------------------- 3. PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [ -n "$ver" ] || { echo "postgresql is installed but has no cluster" >&2; exit 1; }
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
        || pg_ctlcluster "$ver" main start
    i=0; until pg_isready -q -h 127.0.0.1 -p 5432; do i=$((i+1)); [ $i -lt 100 ] || { echo "postgresql did not start" >&2; exit 1; }; sleep 0.1; done
fi
# a password role, so the same URL works with Debian's default scram auth on 127.0.0.1
if ! runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='hotline'" 2>/dev/null | grep -q 1; then
    runuser -u postgres -- psql -q -c "CREATE ROLE hotline LOGIN CREATEDB PASSWORD 'hotline'"
fi
if ! runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_database WHERE datname='hotline'" | grep -q 1; then
    runuser -u postgres -- psql -q -c "CREATE DATABASE hotline OWNER hotline"
fi

# ---------------------------------------------------------------- 3b. an MQTT broker on 1883
# (this machine kind starts one before the session; a fresh Debian host does not)
mqtt_up() { [ -n "$(ss -Hltn 'sport = :1883')" ]; }
if ! mqtt_up; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || mosquitto -d -p 1883
    i=0; until mqtt_up; do i=$((i+1)); [ $i -lt 50 ] || { echo "mosquitto did not start" >&2; exit 1; }; sleep 0.1; done
fi

# ---------------------------------------------------------------- 4. venv
PY=""
for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PY=$c; break
    fi
done
[ -n "$PY" ] || { echo "Python 3.11 is required (python3.11 not found)" >&2; exit 1; }
stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.hotline-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "setting up .venv"
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    # constraints.txt: every package, transitive ones too, at the version the suite was run on
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,sound]'
    echo "$stamp" > .venv/.hotline-stamp
fi

# ---------------------------------------------------------------- 5. the CTI's user runs the venv
# The CTI runs as `hotline` from this tree and .venv. A Python under root's home (pyenv in
# /root, as on these machines; Debian's /usr/bin/python3.11 needs none of this) is out of its
# reach: each folder on the way that it cannot search gets an ACL entry for search (x) only,
# for that user alone: no listing, no read, nothing for anyone else.
runs_as_cti() { setpriv --reuid="$CTI_USER" --regid="$CTI_USER" --init-groups "$@" >/dev/null 2>&1; }
for target in "$(readlink -f .venv/bin/python)" "$(pwd)/hotline/app.py"; do
    d=$(dirname "$target")
    while [ "$d" != / ]; do
        runs_as_cti test -x "$d" || setfacl -m "u:$CTI_USER:x" "$d"
        d=$(dirname "$d")
    done
done
runs_as_cti .venv/bin/python -c 'import hotline.app' \
    || { echo "the $CTI_USER user cannot run .venv/bin/python -m hotline.app from $(pwd)" >&2; exit 1; }
