#!/bin/sh
# Run the chrooted Asterisk 22 of one hotline instance.
#   asterisk.sh run        exec Asterisk in the foreground (its PID is this script's PID)
#   asterisk.sh cli CMD    run a CLI command against the running instance
#   asterisk.sh stop       graceful stop, then TERM, then KILL
# Env: AST_ROOT (the chroot), AST_INSTANCE (the instance's state dir: etc/ run/ spool/ log/ astdb/),
#      AST_PROMPTS (prompt cache dir, mounted read-only), AST_PIDFILE,
#      AST_RECORDINGS (the recordings folder, mounted read-write at /var/lib/hotline/recordings;
#      on disk, never a tmpfs: recordings must survive a reboot).
# Each instance gets a private mount namespace: its config, run dir (control socket), spool, logs
# and astdb are bind-mounted over the chroot's, so the mounts vanish when Asterisk exits and two
# instances (say `make up` and the test suite) never share a control socket.
# Asterisk runs as hotline-asterisk (uid/gid 595 on the host and in the chroot, made by
# install-asterisk-chroot.sh) with umask 007: its run dir (the control socket), logs, astdb and
# spool are 0750 folders of its own group, so no other local user reads them; recordings go to a
# setgid 2770 folder of group hotline-rec, which the CTI's user joins to read (and prune) them:
# the files and date folders Asterisk makes there are group hotline-rec, rw for the group.
set -eu
ROOT=${AST_ROOT:?}
INST=${AST_INSTANCE:?}
PIDFILE=${AST_PIDFILE:-$INST/asterisk.pid}
AST_USER=hotline-asterisk
AST_UID=$(awk -F: -v n=$AST_USER '$1==n{print $3}' "$ROOT/etc/passwd")
REC_GID=$(awk -F: '$1=="hotline-rec"{print $3}' "$ROOT/etc/group")

cmd=${1:-}
case "$cmd" in
run)
    PROMPTS=${AST_PROMPTS:?}
    RECS=${AST_RECORDINGS:?}
    [ -n "$AST_UID" ] && [ -n "$REC_GID" ] || {
        echo "no $AST_USER user or hotline-rec group in $ROOT: run scripts/install.sh" >&2; exit 1; }
    mkdir -p "$RECS"
    chown "$AST_UID:$REC_GID" "$RECS"
    chmod 2770 "$RECS"
    # recordings from before (Debian's uid 101, 0644): to the same owner, group and modes
    find "$RECS" -xdev \( \! -uid "$AST_UID" -o \! -gid "$REC_GID" \) \
        -exec chown "$AST_UID:$REC_GID" {} + || true
    find "$RECS" -xdev -perm /o=rwx -exec chmod o-rwx {} + || true
    find "$RECS" -xdev -mindepth 1 -type d \! -perm -2000 -exec chmod g+s {} + || true
    for d in run spool/monitor spool/tmp spool/outgoing spool/recordings log astdb; do
        mkdir -p "$INST/$d"
    done
    chown -R "$AST_UID:$AST_UID" "$INST/run" "$INST/spool" "$INST/log" "$INST/astdb"
    chmod -R o-rwx "$INST/run" "$INST/spool" "$INST/log" "$INST/astdb"
    chmod 0750 "$INST/run" "$INST/spool" "$INST/log" "$INST/astdb"
    # the mount points, made before the umask: Asterisk (not root) must traverse
    # /var/lib/hotline inside the root to reach its astdb, prompts and recordings; what is
    # mounted on them keeps its own modes. A root made by an earlier version of this script
    # has 0770 root folders here, which Asterisk cannot enter ("Unable to open Asterisk
    # database"): put them right
    mkdir -p "$ROOT/var/lib/hotline/prompts" "$ROOT/var/lib/hotline/astdb" "$ROOT/run/asterisk" \
        "$ROOT/var/lib/hotline/recordings"
    chmod 0755 "$ROOT/var/lib/hotline" "$ROOT/var/lib/hotline/prompts" \
        "$ROOT/var/lib/hotline/astdb" "$ROOT/var/lib/hotline/recordings"
    umask 007
    # -U alone: Asterisk then takes the group of the user and its supplementary ones (initgroups:
    # hotline-rec, for recordings); with -G it would drop every supplementary group
    [ -e "$ROOT/etc/hosts" ] || : > "$ROOT/etc/hosts"
    echo $$ > "$PIDFILE"
    exec unshare --mount --propagation private -- /bin/sh -c '
      set -e
      ROOT=$0 INST=$1 PROMPTS=$2 RECS=$3
      mount -t proc proc "$ROOT/proc"
      mount --bind "$INST/etc" "$ROOT/etc/asterisk"
      mount -o remount,bind,ro "$ROOT/etc/asterisk"
      mount --bind "$PROMPTS" "$ROOT/var/lib/hotline/prompts"
      mount -o remount,bind,ro "$ROOT/var/lib/hotline/prompts"
      mount --bind "$INST/run" "$ROOT/run/asterisk"
      mount --bind "$INST/spool" "$ROOT/var/spool/asterisk"
      mount --bind "$INST/log" "$ROOT/var/log/asterisk"
      mount --bind "$INST/astdb" "$ROOT/var/lib/hotline/astdb"
      mount --bind "$RECS" "$ROOT/var/lib/hotline/recordings"
      mount --bind /etc/hosts "$ROOT/etc/hosts"   # own hostname must resolve without DNS
      exec chroot "$ROOT" /usr/sbin/asterisk -f -n -U "$4"
    ' "$ROOT" "$INST" "$PROMPTS" "$RECS" "$AST_USER"
    ;;
cli)
    shift
    PID=$(cat "$PIDFILE" 2>/dev/null) || { echo "asterisk is not running ($PIDFILE)" >&2; exit 1; }
    exec nsenter --target "$PID" --mount -- chroot "$ROOT" /usr/sbin/asterisk -rx "$*"
    ;;
stop)
    PID=$(cat "$PIDFILE" 2>/dev/null) || exit 0
    if kill -0 "$PID" 2>/dev/null; then
        nsenter --target "$PID" --mount -- chroot "$ROOT" /usr/sbin/asterisk -rx 'core stop now' \
            >/dev/null 2>&1 || kill -TERM "$PID" 2>/dev/null || true
        i=0
        while kill -0 "$PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    ;;
*)
    echo "usage: asterisk.sh run|cli CMD|stop" >&2; exit 2 ;;
esac
