#!/bin/bash
# ndmjob_peer.sh -- Amanda ndmjob's OWN NDMP server as a peer of the
# interoperability tests: a second, independent implementation of the
# DATA (butype tar, via tests/interop/peer/wrap_tar), TAPE/mover (file
# tapes) and ROBOT (simulator) services, to check the tests themselves and
# to stand on the other end of a three-way backup.
#
# Source it (lib.sh first: it uses NDMJOB, ilog, die) for
#   peer_start DIR [PORT]   start "ndmjob -o daemon" with its config file;
#                           sets PEER_PID (= its process group), PEER_PORT,
#                           PEER_DIR, PEER_AGENT (ndmjob's HOST:PORT/4t,USER,PASS)
#   peer_stop               stop it (its process group: the daemon, its
#                           sessions and their formatters), bounded
#   peer_new_tape NAME      create an empty file tape, print its path
#   peer_new_robot NAME     create a robot simulator directory, print it
# or run it:
#   ndmjob_peer.sh start DIR [PORT]   prints the PID; stays in the background
#   ndmjob_peer.sh stop DIR
#
# ndmjob's daemon binds 0.0.0.0 and the project's shim cannot rebind it, so
# the peer may only run in a private network namespace (only "lo" in it):
# run the caller under `unshare -n` and `ip link set lo up` first, and the
# DMA (and any ndmpd it talks to) in the same namespace.  peer_start
# refuses otherwise.
#
# Facts about ndmjob's server: login is hard-coded ndmp/ndmp (TEXT or MD5);
# butypes come only from the config file (without "[butype tar]" every
# DATA_START_BACKUP gets ILLEGAL_ARGS); it runs "wrap_<butype>" from $PATH
# through sh -c; a tape is the path of an EXISTING file (<tape>.lck is its
# lock, <tape>.pos its position); it has no DATA_LISTEN; it never reaps its
# session processes (zombies until it exits).

PEER_USER=ndmp
PEER_PASSWORD=ndmp
PEER_PID=""
PEER_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NDMJOB:=/usr/lib/amanda/ndmjob}"

# 0 if this process is in a network namespace with no interface but lo.
peer_private_netns() {
    local n
    n="$(ip -o link show 2>/dev/null | awk -F': ' '$2 != "lo" { c++ } END { print c + 0 }')"
    [ "$n" = 0 ] && ip -o link show lo 2>/dev/null | grep -q 'UP'
}

# /proc/net/tcp (this namespace): someone LISTENs on 0.0.0.0/127.0.0.1:PORT
peer_listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp 2>/dev/null
}

peer_start() {
    local dir="$1" port="${2:-10000}" i
    peer_private_netns || { echo "peer_start: not in a private network namespace (unshare -n; ip link set lo up)" >&2; return 1; }
    [ -x "$NDMJOB" ] || { echo "peer_start: $NDMJOB missing" >&2; return 1; }
    command -v wrap_tar >/dev/null 2>&1 && [ "$(command -v wrap_tar)" != "$PEER_HERE/peer/wrap_tar" ] &&
        echo "peer_start: note: another wrap_tar is on PATH; the peer uses $PEER_HERE/peer/wrap_tar" >&2
    peer_listening "$port" && { echo "peer_start: port $port is taken" >&2; return 1; }
    mkdir -p "$dir/amlog/client" "$dir/tapes" || return 1
    chown -R backup:backup "$dir/amlog" 2>/dev/null || true
    # The butype table (CONFIG_GET_BUTYPE_INFO, and what START_BACKUP
    # accepts).  v4attr 0x1A06: BACKUP_FILELIST | RECOVER_FILELIST |
    # BACKUP_FH_FILE | RECOVER_FILEHIST | RECOVER_FH_FILE.
    printf '[butype tar]\n\tv2attr 0x0\n\tv3attr 0x207\n\tv4attr 0x1A06\n' >"$dir/ndmjob.conf"
    local run=()
    # Amanda's debug log goes to /var/log/amanda; as root, keep it in DIR.
    if [ "$(id -u)" = 0 ] && [ -d /var/log/amanda ] && unshare -m true 2>/dev/null; then
        run=(unshare -m sh -c 'mount --bind "$0" /var/log/amanda && exec "$@"' "$dir/amlog")
    fi
    local env_=(env "PATH=$PEER_HERE/peer:$PATH")
    [ -n "${NDMJOB_SHIM:-}" ] && env_+=("LD_PRELOAD=$NDMJOB_SHIM")
    # setsid: its own session and process group (PGID = PID), so that
    # peer_stop reaches the sessions and formatters it forks.
    setsid "${env_[@]}" "${run[@]}" "$NDMJOB" -o daemon -p "$port" -o "config-file=$dir/ndmjob.conf" \
        >"$dir/server.log" 2>&1 </dev/null &
    PEER_PID=$!
    PEER_DIR="$dir"; PEER_PORT="$port"
    echo "$PEER_PID" >"$dir/pid"
    for i in $(seq 1 100); do
        peer_listening "$port" && break
        kill -0 "$PEER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if ! peer_listening "$port"; then
        cat "$dir/server.log" >&2
        peer_stop
        echo "peer_start: ndmjob's server did not listen on port $port" >&2
        return 1
    fi
    PEER_AGENT="127.0.0.1:$port/4t,$PEER_USER,$PEER_PASSWORD"
    return 0
}

# peer_stop: SIGTERM to the peer's process group, up to 5 s, then SIGKILL.
peer_stop() {
    local pid="${PEER_PID:-}" i
    [ -n "$pid" ] || return 0
    PEER_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "${PEER_DIR:-/nonexistent}/pid"
    return 0
}

peer_new_tape() {
    local t="$PEER_DIR/tapes/$1"
    rm -f "$t" "$t.lck" "$t.pos"
    : >"$t" && echo "$t"
}

peer_new_robot() {
    local r="$PEER_DIR/robots/$1"
    rm -rf "$r"
    mkdir -p "$r" && echo "$r"
}

# Run as a program: start / stop.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    case "${1:-}" in
        start)
            [ $# -ge 2 ] || { echo "usage: $0 start DIR [PORT]" >&2; exit 2; }
            peer_start "$2" "${3:-10000}" || exit 1
            echo "$PEER_PID"
            ;;
        stop)
            [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
            PEER_DIR="$2"; PEER_PID="$(cat "$2/pid" 2>/dev/null)"
            [ -n "$PEER_PID" ] && grep -q ndmjob "/proc/$PEER_PID/cmdline" 2>/dev/null ||
                { echo "no peer recorded in $2" >&2; exit 1; }
            peer_stop
            ;;
        *) echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2 ;;
    esac
fi
