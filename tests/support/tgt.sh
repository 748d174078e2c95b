#!/bin/bash
# tgt.sh: a private tgtd (tgt's userspace iSCSI target) on 127.0.0.1 for tests.
#
#   tgt.sh start DIR [OWNER_PID]   start one in DIR (created if missing); prints its PID
#   tgt.sh stop DIR                stop the one started in DIR (and only that one)
#
# start picks a free TCP port on 127.0.0.1 (the control port, which names
# tgtd's management socket, is the same number; the socket itself is
# DIR/ipc.PORT, through TGT_IPC_SOCKET, so nothing goes to /var/run/tgtd),
# and creates
#   target 1 IQN:disk  LUN 1, 2: SBC disks on 64 MiB sparse files
#   target 2 IQN:tape  LUN 1: SSC drive, cartridge STAND001 loaded
#   target 3 IQN:vtl   LUN 1, 2: empty SSC drives; LUN 3: SMC changer with
#                      drives at element 1, 2 (= LUN 1, 2), picker 16,
#                      slots 1024..1029 holding LAB001L6..LAB006L6 and the
#                      import/export element 768 holding CLN001CU
# each bound to initiators on 127.0.0.1, then writes DIR/tgt.env
# (shell-sourceable: TGT_PID TGT_PORT TGT_CPORT TGT_IPC_SOCKET DISK0_URL
# DISK1_URL TAPE_URL VTL_DRIVE1_URL VTL_DRIVE2_URL VTL_CHANGER_URL; run
# tgtadm with TGT_IPC_SOCKET exported and -C TGT_CPORT).  tgt.env exists only once
# everything is set up.  With OWNER_PID, a watchdog stops tgtd when that
# process is gone, so a crashed test run leaves nothing behind.
#
# stop: tgtd ignores SIGTERM, so its targets are deleted (--force), then
# "--op delete --mode system" asks it to exit; SIGKILL after a bounded wait.
# Only the PID recorded in DIR is signalled, after checking that it is the
# tgtd with our control port.  Both commands are idempotent and every wait
# is bounded.  Env: TGTD TGTADM TGTIMG (binaries), TGT_IQN_BASE.
set -u -o pipefail

TGTD=${TGTD:-/usr/sbin/tgtd}
TGTADM=${TGTADM:-/usr/sbin/tgtadm}
TGTIMG=${TGTIMG:-/usr/sbin/tgtimg}
IQN=${TGT_IQN_BASE:-iqn.2026-11.org.ndmpd.test}
DISK_MB=64
TAPE_MB=64
NSLOTS=6
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

die() { echo "tgt.sh: $*" >&2; exit 1; }

# A PID is "ours" when it is a live tgtd whose command line names our
# control port: a recycled PID is never signalled.
is_our_tgtd() {  # PID CPORT
    local pid=$1 cport=$2
    [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tgtd ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qx -- "$cport"
}

gone() {  # PID: not running (or a zombie)
    ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

port_listening() {  # PORT
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

do_stop() {
    local dir=$1 pid cport wd
    [ -d "$dir" ] || { echo "tgt.sh: $dir: nothing to stop"; return 0; }
    dir=$(cd "$dir" && pwd)
    export TGT_IPC_SOCKET=$dir/ipc
    if [ -f "$dir/watchdog.pid" ]; then
        wd=$(cat "$dir/watchdog.pid")
        # The watchdog runs "tgt.sh stop" itself when its owner is gone.
        if [ "$wd" != "$$" ] && tr '\0' '\n' <"/proc/$wd/cmdline" 2>/dev/null |
            grep -qx -- "$dir"; then
            kill -KILL "$wd" 2>/dev/null
        fi
        rm -f "$dir/watchdog.pid"
    fi
    if [ ! -f "$dir/tgtd.pid" ]; then
        rm -f "$dir/tgt.env"
        echo "tgt.sh: no tgtd recorded in $dir"
        return 0
    fi
    read -r pid cport <"$dir/tgtd.pid"
    if is_our_tgtd "$pid" "$cport"; then
        # A target whose logical unit still runs a command (one whose
        # connection was dropped, say) cannot be deleted, --force or not,
        # until the command ends: try again for a while.
        local tid tids deadline=$((SECONDS + 5))
        while :; do
            tids=$(timeout 5 "$TGTADM" -C "$cport" --lld iscsi --mode target --op show \
                   2>/dev/null | sed -n 's/^Target \([0-9]*\):.*/\1/p')
            [ -n "$tids" ] || break
            for tid in $tids; do
                timeout 5 "$TGTADM" -C "$cport" --lld iscsi --mode target --op delete --force \
                    --tid "$tid" >/dev/null 2>&1
            done
            [ "$SECONDS" -lt "$deadline" ] || break
            sleep 0.2
        done
        timeout 5 "$TGTADM" -C "$cport" --op delete --mode system >/dev/null 2>&1
        for _ in $(seq 1 50); do gone "$pid" && break; sleep 0.1; done
        if ! gone "$pid" && is_our_tgtd "$pid" "$cport"; then
            kill -KILL "$pid" 2>/dev/null
            for _ in $(seq 1 50); do gone "$pid" && break; sleep 0.1; done
        fi
        gone "$pid" || die "tgtd $pid did not exit"
    fi
    # tgtd leaves its management socket and lock behind.
    rm -f "$dir/tgtd.pid" "$dir/tgt.env" "$dir/ipc.$cport" "$dir/ipc.$cport.lock"
    echo "tgt.sh: tgtd $pid stopped"
}

# The rest of start runs with this trap: a half-built tgtd never outlives
# a failed start.
STARTED_DIR=
cleanup_failed_start() {
    [ -n "$STARTED_DIR" ] && do_stop "$STARTED_DIR" >/dev/null 2>&1
}

do_start() {
    local dir=$1 owner=${2:-}
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd)
    local media=$dir/m
    # tgt's smc keeps media_home/BARCODE in a 128-byte buffer; a unix
    # socket path has 108 bytes.
    [ $((${#media} + 1 + 8)) -lt 128 ] || die "$dir: path too long for tgt's changer"
    [ $((${#dir} + 10)) -lt 108 ] || die "$dir: path too long for tgtd's socket"
    export TGT_IPC_SOCKET=$dir/ipc

    if [ -f "$dir/tgt.env" ] && [ -f "$dir/tgtd.pid" ]; then
        local pid cport
        read -r pid cport <"$dir/tgtd.pid"
        if is_our_tgtd "$pid" "$cport"; then
            echo "$pid"
            return 0
        fi
        rm -f "$dir/tgt.env" "$dir/tgtd.pid"
    fi
    for b in "$TGTD" "$TGTADM" "$TGTIMG"; do
        [ -x "$b" ] || die "missing $b (Debian package tgt)"
    done
    command -v ss >/dev/null || die "missing ss (Debian package iproute2)"
    mkdir -p "$media" || die "cannot create $media"

    for f in disk0 disk1; do
        [ -f "$dir/$f.img" ] || truncate -s "${DISK_MB}M" "$dir/$f.img" ||
            die "cannot create $dir/$f.img"
    done
    local barcodes="STAND001 CLN001CU" i
    for i in $(seq 1 $NSLOTS); do barcodes="$barcodes $(printf 'LAB%03dL6' "$i")"; done
    for b in $barcodes; do
        [ -f "$media/$b" ] || "$TGTIMG" --op new --device-type tape --barcode "$b" \
            --size "$TAPE_MB" --type data --file "$media/$b" --thin-provisioning \
            >/dev/null || die "tgtimg failed for $b"
    done
    [ -f "$dir/smc" ] || dd if=/dev/zero of="$dir/smc" bs=1k count=1 2>/dev/null ||
        die "cannot create $dir/smc"

    # Ports below the kernel's ephemeral range, so that no client socket
    # takes ours meanwhile; tgtd may still lose a race, so verify and retry.
    local pid='' port=''
    trap cleanup_failed_start EXIT
    for _ in $(seq 1 20); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        port_listening "$port" && continue
        setsid "$TGTD" -f -C "$port" --iscsi "portal=127.0.0.1:$port" \
            </dev/null >"$dir/tgtd.log" 2>&1 &
        pid=$!
        echo "$pid $port" >"$dir/tgtd.pid"
        STARTED_DIR=$dir
        local up='' ready_by=$((SECONDS + 10))
        while [ "$SECONDS" -lt "$ready_by" ]; do
            gone "$pid" && break
            if ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}' |
                grep -qx "127.0.0.1:$port" &&
                timeout 2 "$TGTADM" -C "$port" --lld iscsi --mode target --op show \
                    >/dev/null 2>&1; then
                up=1
                break
            fi
            sleep 0.1
        done
        [ -n "$up" ] && break
        do_stop "$dir" >/dev/null 2>&1
        STARTED_DIR=
        pid=
    done
    [ -n "$pid" ] || die "could not start tgtd (last log: $(tail -3 "$dir/tgtd.log" 2>/dev/null))"
    is_our_tgtd "$pid" "$port" || die "PID $pid is not the tgtd we started"

    A() { timeout 10 "$TGTADM" -C "$port" --lld iscsi "$@" >/dev/null || die "tgtadm $*"; }
    LU() { A --mode logicalunit "$@"; }

    A --mode target --op new --tid 1 --targetname "$IQN:disk"
    LU --op new --tid 1 --lun 1 --bstype rdwr --backing-store "$dir/disk0.img"
    LU --op new --tid 1 --lun 2 --bstype rdwr --backing-store "$dir/disk1.img"
    A --mode target --op bind --tid 1 --initiator-address 127.0.0.1

    A --mode target --op new --tid 2 --targetname "$IQN:tape"
    LU --op new --tid 2 --lun 1 --device-type tape --bstype ssc --backing-store "$media/STAND001"
    A --mode target --op bind --tid 2 --initiator-address 127.0.0.1

    A --mode target --op new --tid 3 --targetname "$IQN:vtl"
    local d
    for d in 1 2; do
        # A drive needs a medium to be created; then the medium is taken out.
        LU --op new --tid 3 --lun $d --device-type tape --bstype ssc \
            --backing-store "$media/LAB001L6"
        LU --op update --tid 3 --lun $d --params online=0
    done
    LU --op new --tid 3 --lun 3 --device-type changer --backing-store "$dir/smc"
    LU --op update --tid 3 --lun 3 --params media_home="$media"
    LU --op update --tid 3 --lun 3 --params element_type=4,start_address=1,quantity=2
    LU --op update --tid 3 --lun 3 --params element_type=4,address=1,tid=3,lun=1
    LU --op update --tid 3 --lun 3 --params element_type=4,address=2,tid=3,lun=2
    LU --op update --tid 3 --lun 3 --params element_type=1,start_address=16,quantity=1
    LU --op update --tid 3 --lun 3 --params element_type=2,start_address=1024,quantity=$NSLOTS
    for i in $(seq 1 $NSLOTS); do
        LU --op update --tid 3 --lun 3 --params \
            "element_type=2,address=$((1023 + i)),barcode=$(printf 'LAB%03dL6' "$i"),sides=1"
    done
    LU --op update --tid 3 --lun 3 --params element_type=3,start_address=768,quantity=1
    LU --op update --tid 3 --lun 3 --params element_type=3,address=768,barcode=CLN001CU,sides=1
    A --mode target --op bind --tid 3 --initiator-address 127.0.0.1

    if [ -n "$owner" ]; then
        # Polls its owner once a second; "stop" kills it by PID otherwise.
        # shellcheck disable=SC2016  # expanded by the watchdog's shell
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2/tgtd.pid" ]; do
                            sleep 1; done; exec "$0" stop "$2"' \
            "$SELF" "$owner" "$dir" </dev/null >>"$dir/watchdog.log" 2>&1 &
        echo $! >"$dir/watchdog.pid"
    fi

    local u="iscsi://127.0.0.1:$port"
    cat >"$dir/tgt.env.tmp" <<EOF
TGT_PID=$pid
TGT_PORT=$port
TGT_CPORT=$port
TGT_IPC_SOCKET=$TGT_IPC_SOCKET
DISK0_URL=$u/$IQN:disk/1
DISK1_URL=$u/$IQN:disk/2
TAPE_URL=$u/$IQN:tape/1
VTL_DRIVE1_URL=$u/$IQN:vtl/1
VTL_DRIVE2_URL=$u/$IQN:vtl/2
VTL_CHANGER_URL=$u/$IQN:vtl/3
EOF
    mv "$dir/tgt.env.tmp" "$dir/tgt.env" || die "cannot write $dir/tgt.env"
    STARTED_DIR=
    trap - EXIT
    echo "$pid"
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: tgt.sh start DIR [OWNER_PID]"; do_start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: tgt.sh stop DIR"; do_stop "$2" ;;
    *) die "usage: tgt.sh start DIR [OWNER_PID] | tgt.sh stop DIR" ;;
esac
