#!/bin/sh
# Install Asterisk 22 (Debian sid package) into a chroot on a Debian 12 or 13 host.
# Adapted from the recipe in shared/asterisk; checks the major version after install.
# Host apt sources and host libc are untouched; only mmdebstrap is installed on the host.
# Idempotent: exits early when the chroot already matches the wanted spec.
set -eu
ROOT=${AST_ROOT:-/var/lib/hotline/asterisk-root}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${AST_SUITE:-sid}
PKGS=${AST_PKGS:-asterisk,asterisk-core-sounds-en-gsm}   # add asterisk-core-sounds-en-wav (+18 MB) if wanted
SPEC="suite=$SUITE pkgs=$PKGS recipe=1"
STAMP="$ROOT/.asterisk-chroot.spec"

if [ -x "$ROOT/usr/sbin/asterisk" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ]; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "must run as root (mmdebstrap root mode, chroot)" >&2; exit 1; }

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
