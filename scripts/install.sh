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
chromium chromium-driver fonts-wqy-microhei fail2ban nftables"
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
stamp=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.hotline-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "setting up .venv"
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,sound]'
    echo "$stamp" > .venv/.hotline-stamp
fi
