#!/bin/sh
# Install Asterisk 22 (Debian sid package) into a chroot on a Debian 12 or 13 host.
# Adapted from the recipe in shared/asterisk; checks the major version after install.
# Host apt sources and host libc are untouched; only mmdebstrap is installed on the host.
# Idempotent: exits early when the chroot already matches the wanted spec; a tree of the previous
# recipe is hardened in place (no rebuild).
#
# Hardening (recipe 2):
#   - modules that reach a shell are deleted from the root, and dpkg is told never to put them
#     back on an upgrade: app_system (System, TrySystem), func_shell (SHELL), app_externalivr
#     (runs a program), pbx_lua (a Lua dialplan has os.execute). With them in the root, a
#     `module load` is all that stands between AMI or CLI access and a shell.
#   - Asterisk runs as hotline-asterisk, uid/gid 595, the same ids on the host and in the
#     chroot (Debian's chroot `asterisk` is uid 101, on the host someone else's: postgres), with
#     the supplementary group hotline-rec (596) that owns recordings and that the CTI's user joins.
set -eu
ROOT=${AST_ROOT:-/var/lib/hotline/asterisk-root}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${AST_SUITE:-sid}
PKGS=${AST_PKGS:-asterisk,asterisk-core-sounds-en-gsm}   # add asterisk-core-sounds-en-wav (+18 MB) if wanted
SPEC="suite=$SUITE pkgs=$PKGS recipe=2"
OLD_SPEC="suite=$SUITE pkgs=$PKGS recipe=1"   # the same tree, not hardened yet
STAMP="$ROOT/.asterisk-chroot.spec"
# keep in step with asterisk_conf/render.py (ASTERISK_USER, ASTERISK_UID/GID, RECORDINGS_*)
AST_USER=hotline-asterisk
AST_ID=595
REC_GROUP=hotline-rec
REC_GID=596
SHELL_MODULES="app_system.so func_shell.so app_externalivr.so pbx_lua.so"

# the fixed-id group $2 ($1 = a root dir: / for the host), or fail if the id is someone else's
ensure_group() {
    cur=$(awk -F: -v n="$2" '$1==n{print $3}' "$1/etc/group")
    if [ -z "$cur" ]; then
        other=$(awk -F: -v g="$3" '$3==g{print $1}' "$1/etc/group")
        [ -z "$other" ] || { echo "gid $3 is taken by $other in $1; cannot create $2" >&2; exit 1; }
        chroot "$1" groupadd --system --gid "$3" "$2"
    elif [ "$cur" != "$3" ]; then
        echo "group $2 in $1 has gid $cur, not $3" >&2; exit 1
    fi
}

ensure_user() {
    root=$1
    ensure_group "$root" "$AST_USER" "$AST_ID"
    ensure_group "$root" "$REC_GROUP" "$REC_GID"
    cur=$(awk -F: -v n="$AST_USER" '$1==n{print $3}' "$root/etc/passwd")
    if [ -z "$cur" ]; then
        other=$(awk -F: -v u="$AST_ID" '$3==u{print $1}' "$root/etc/passwd")
        [ -z "$other" ] || { echo "uid $AST_ID is taken by $other in $root" >&2; exit 1; }
        chroot "$root" useradd --system --uid "$AST_ID" --gid "$AST_ID" --groups "$REC_GROUP" \
            --no-create-home --home-dir /var/lib/asterisk --shell /usr/sbin/nologin \
            --comment "hotline Asterisk" "$AST_USER"
    elif [ "$cur" != "$AST_ID" ]; then
        echo "user $AST_USER in $root has uid $cur, not $AST_ID" >&2; exit 1
    else
        chroot "$root" usermod --append --groups "$REC_GROUP" "$AST_USER"
    fi
}

harden() {
    tree=$1
    moddir=$(dirname "$(find "$tree/usr/lib" -name app_dial.so -path '*asterisk/modules/*' | head -1)")
    [ -d "$moddir" ] || { echo "no Asterisk modules dir in $tree" >&2; exit 1; }
    mkdir -p "$tree/etc/dpkg/dpkg.cfg.d"
    : > "$tree/etc/dpkg/dpkg.cfg.d/hotline-no-shell-modules"
    for m in $SHELL_MODULES; do
        rm -f "$moddir/$m"
        echo "path-exclude=/usr/lib/*/asterisk/modules/$m" >> "$tree/etc/dpkg/dpkg.cfg.d/hotline-no-shell-modules"
    done
    ensure_user "$tree"
    for d in var/lib/asterisk var/spool/asterisk var/log/asterisk var/cache/asterisk run/asterisk; do
        if [ -d "$tree/$d" ]; then chown -R "$AST_ID:$AST_ID" "$tree/$d"; fi
    done
}

tree_is() { [ -x "$ROOT/usr/sbin/asterisk" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$1" ]; }
host_user_ok() { [ "$(awk -F: -v n="$AST_USER" '$1==n{print $3}' /etc/passwd)" = "$AST_ID" ]; }

if tree_is "$SPEC" && host_user_ok; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "must run as root (mmdebstrap root mode, chroot)" >&2; exit 1; }
# the host has the same user and groups, so file owners read the same on both sides
ensure_user /
tree_is "$SPEC" && exit 0
if tree_is "$OLD_SPEC"; then
    harden "$ROOT"
    echo "$SPEC" > "$STAMP"
    echo "hardened $ROOT in place ($SPEC)"
    exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

# never rm -rf a tree that still has /proc or /dev mounted inside it
if grep -qs " $ROOT[/ ]" /proc/mounts || grep -qs " $ROOT.new[/ ]" /proc/mounts; then
    echo "something is mounted under $ROOT; unmount it first" >&2; exit 1
fi

NEW="$ROOT.new"
rm -rf --one-file-system "$NEW"
# a fresh machine has no /var/lib/hotline yet; mmdebstrap needs the parent to exist
mkdir -p "$(dirname "$ROOT")"
# Check-Valid-Until=false: the archive mirror used by these machines serves a sid
# InRelease whose Valid-Until is in the past ("Release file ... is expired").
mmdebstrap --variant=minbase \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --include="$PKGS" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" install -d -o asterisk -g asterisk /run/asterisk' \
    --customize-hook='cp /etc/hosts "$1/etc/hosts"' \
    "$SUITE" "$NEW" "$MIRROR"
harden "$NEW"
# sid moves daily: refuse a tree whose Asterisk is not the major version the config is for
major=$(chroot "$NEW" /usr/sbin/asterisk -V | sed -n 's/^Asterisk \([0-9]*\)\..*/\1/p')
if [ "$major" != "22" ]; then
    echo "sid now ships Asterisk $major, not 22; keeping the old tree. Pin AST_PKGS=asterisk=22.*" >&2
    rm -rf --one-file-system "$NEW"; exit 1
fi
echo "$SPEC" > "$NEW/.asterisk-chroot.spec"
rm -rf --one-file-system "$ROOT"
mv "$NEW" "$ROOT"
echo "installed: $(chroot "$ROOT" /usr/sbin/asterisk -V) in $ROOT ($(du -sh "$ROOT" | cut -f1))"
