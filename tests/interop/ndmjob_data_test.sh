#!/bin/bash
# Amanda's ndmjob as the DMA of the data server: a tar backup of a rich
# tree (make_rich_tree.sh) to tape, its file history, a table of contents
# (ndmjob -t: DATA_START_RECOVER_FILEHIST) and a full restore into a fresh
# directory whose manifest (data_lib.sh tree_manifest) must equal the
# source's; and ndmjob's data conformance suite (-o test-data) with every
# step passed.  Wall times of each backup, TOC and restore are printed.
#
#   ndmjob_data_test.sh NDMPD_BINARY SOURCE_DIR [MODE...]
#
# Modes (default: local tcp swap):
#   local          -D ndmpd only: data server and mover in one session, LOCAL
#                  data connection; tape = vtl0.drive0, loaded by the robot
#   tcp            -D ndmpd -T ndmpd: MOVER_LISTEN(TCP) + DATA_CONNECT
#   swap           tcp with -o swap-connect: DATA_LISTEN + MOVER_CONNECT
#   threeway       -D ndmpd#1 -T ndmpd#2: two daemons, the data connection
#                  over TCP between them (tape and robot of the second)
#   threeway-peer  -D ndmpd -T ndmjob's own server (a file tape)
# ndmpd runs with --export /data=TREE --export /restore=RESTORE_ROOT; the
# DMA names them by export (FILESYSTEM=/data, PREFIX=/restore/MODE), or by
# host path with NDMPD_PATHS=host.
#
# PEER=ndmjob: the harness checked against ndmjob's OWN server instead of
# ndmpd (NDMPD_BINARY is not used): data and tape server = the peer with a
# file tape (PEER_TAPE=robot: its robot simulator and -m @1024 instead);
# swap is skipped (the peer has no DATA_LISTEN); threeway and threeway-peer
# use a second peer as the tape server; test-data runs and is reported, its
# result is not judged (the peer fails D-LISTEN).
#
# The peer binds 0.0.0.0, so whenever it runs (PEER=ndmjob, threeway-peer)
# the whole test re-runs itself in a private network namespace (unshare -n)
# where ndmpd, the peer and the DMA all live.
#
# Env: NDMJOB_SHIM (the shim, preloaded into every ndmjob), PEER,
# PEER_TAPE, NDMPD_PATHS, COMPARE_ROOT=0 (leave the restore root's own
# attributes out of the comparison), OP_TIMEOUT (seconds per ndmjob run,
# default 300), NDMP_BLOCKS (record size in 512-byte blocks, default 20),
# KEEP=1 (keep the scratch directory; print where), TEST_DATA=0 (skip the
# test-data suite: only while debugging).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 2 ] || { sed -n '2,40p' "$0" >&2; exit 2; }
PEER="${PEER:-}"
case "$PEER" in ""|ndmjob) ;; *) echo "PEER must be ndmjob or empty" >&2; exit 2 ;; esac

# The peer needs a private network namespace: re-run inside one.
need_netns=0
[ "$PEER" = ndmjob ] && need_netns=1
for m in "${@:3}"; do [ "$m" = threeway-peer ] && need_netns=1; done
if [ "$need_netns" = 1 ] && [ -z "${NDMJOB_DATA_TEST_IN_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL: the peer needs root (unshare -n)" >&2; exit 1; }
    NDMJOB_DATA_TEST_IN_NETNS=1 exec unshare -n -- "$0" "$@"
fi
if [ -n "${NDMJOB_DATA_TEST_IN_NETNS:-}" ]; then
    ip link set lo up || { echo "FAIL: cannot bring lo up in the namespace" >&2; exit 1; }
fi

. "$HERE/lib.sh"
. "$HERE/data_lib.sh"
. "$HERE/ndmjob_peer.sh"
[ -x "$NDMJOB" ] || die "$NDMJOB missing (scripts/setup.sh installs amanda-common)"
[ -n "${NDMJOB_SHIM:-}" ] && [ -f "$NDMJOB_SHIM" ] || die "NDMJOB_SHIM is not the shim"
[ "$(id -u)" = 0 ] || die "run as root (the tree has owners and setuid files)"

NDMPD_BIN="$1"; SRC="$2"; shift 2
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(local tcp swap)
for m in "${MODES[@]}"; do
    case "$m" in local|tcp|swap|threeway|threeway-peer) ;; *) die "unknown mode $m" ;; esac
done
OT="${OP_TIMEOUT:-300}"
BLOCKS="${NDMP_BLOCKS:-20}"

# Stop everything started here, then lib.sh's cleanup (ndmpd, $WORK).
PEER2_PID=""; PEER2_DIR=""
data_cleanup() {
    stop_second_ndmpd >/dev/null 2>&1
    if [ -n "$PEER2_PID" ]; then
        local p="$PEER_PID" d="${PEER_DIR:-}"
        PEER_PID="$PEER2_PID"; PEER_DIR="$PEER2_DIR"; PEER2_PID=""
        peer_stop; PEER_PID="$p"; PEER_DIR="$d"
    fi
    peer_stop
    if [ "${KEEP:-0}" = 1 ]; then
        stop_ndmpd >/dev/null 2>&1
        echo "kept $WORK" >&2
        return
    fi
    cleanup
}
trap data_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- the tree and where restores go
TREE="$WORK/tree"
RESTORE_ROOT="$WORK/restore"
"$HERE/make_rich_tree.sh" "$TREE" || die "make_rich_tree failed"
mkdir -p "$RESTORE_ROOT"
tree_manifest "$TREE" >"$WORK/tree.manifest"
n_tree=$(wc -l <"$WORK/tree.manifest")
# The paths file history must name: "/" + each entry, NDMJOB's %XX escapes.
# ndmjob writes index names into a 1024-byte buffer (ndml_fhdb.c namebuf
# [NDMOS_CONST_PATH_MAX]): a longer name (after escaping) is cut to 1023
# bytes in the index whatever the server sent, so expect the cut name.
(cd "$TREE" && LC_ALL=C find . -mindepth 1 -printf '/%P\n') | LC_ALL=C awk '
    BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
    { o = ""; for (i = 1; i <= length($0); i++) { c = substr($0, i, 1); n = ord[c]
          o = o ((n <= 32 || n > 126 || c == "%") ? sprintf("%%%02X", n) : c) }
      print substr(o, 1, 1023) }' | LC_ALL=C sort -u >"$WORK/tree.paths"
ilog "rich tree: $n_tree entries, $(du -sk --apparent-size "$TREE" | cut -f1) KiB apparent"

# ---- the servers
A=""; A2=""
start_peer2() {  # a second ndmjob server (port 10001): the tape side of three-way
    [ -n "$PEER2_PID" ] && return 0
    local p="$PEER_PID" d="${PEER_DIR:-}" port="${PEER_PORT:-}" agent="${PEER_AGENT:-}"
    peer_start "$WORK/peer2" 10001 || die "second peer did not start"
    PEER2_PID="$PEER_PID"; PEER2_DIR="$PEER_DIR"; PEER2_AGENT="$PEER_AGENT"
    PEER_PID="$p"; PEER_DIR="$d"; PEER_PORT="$port"; PEER_AGENT="$agent"
}
if [ "$PEER" = ndmjob ]; then
    peer_start "$WORK/peer" 10000 || die "ndmjob's server did not start"
    A="$PEER_AGENT"
    ilog "peer: ndmjob's own server, pid $PEER_PID on 127.0.0.1:$PEER_PORT (private netns)"
else
    [ -x "$NDMPD_BIN" ] || die "$NDMPD_BIN is not executable"
    start_ndmpd "$NDMPD_BIN" "$SRC" --export "/data=$TREE" --export "/restore=$RESTORE_ROOT"
    A="127.0.0.1:$NDMPD_PORT/4m,$DMA_USER,$DMA_PASSWORD"
fi

# ---- ndmjob's data conformance suite
out="$WORK/test-data.out"
if [ "${TEST_DATA:-1}" = 0 ]; then
    ilog "test-data skipped (TEST_DATA=0)"
elif run_ndmjob "$OT" "$out" -v -o test-data -D "$A"; [ "$PEER" = ndmjob ]; then
    ilog "test-data against the peer (not judged): $(grep -E 'FINAL|-- (Failed|Almost)' "$out" | tr '\n' ' ')"
else
    suite_passed "$out" test-data
    ilog "test-data: $(grep -o 'FINAL test-data Passed -- pass=[0-9]*' "$out")"
fi

# ---- one roundtrip
# tape_args SIDE SLOT NAME: TAPE=(...) for the tape server SIDE
#   ndmpd|ndmpd2: the embedded library's robot loads slot SLOT into vtl0.drive0
#   peer|peer2:   a fresh file tape NAME (PEER_TAPE=robot: the simulator)
tape_args() {
    local side="$1" slot="$2" name="$3" agent
    case "$side" in
        ndmpd)  agent="$A" ;;
        ndmpd2) agent="$A2" ;;
        peer)   agent="$PEER_AGENT" ;;
        peer2)  agent="$PEER2_AGENT" ;;
    esac
    case "$side" in
        ndmpd|ndmpd2) TAPE=(-R "$agent" -r vtl0.changer -f vtl0.drive0 -m "@$slot") ;;
        peer|peer2)
            local dir
            if [ "$side" = peer ]; then dir="$PEER_DIR"; else dir="$PEER2_DIR"; fi
            if [ "${PEER_TAPE:-file}" = robot ]; then
                # The simulator makes its state (10 full slots @1024...)
                # on first use; it has no INITIALIZE ELEMENT STATUS.
                local r="$dir/robots/$name"
                rm -rf "$r"; mkdir -p "$r"
                TAPE=(-R "$agent" -r "$r" -f "$r/drive0" -m "@$slot")
            else
                local t="$dir/tapes/$name"
                mkdir -p "$dir/tapes"; rm -f "$t" "$t.lck" "$t.pos"; : >"$t"
                TAPE=(-f "$t")
            fi ;;
    esac
}

# cartridge_home LABEL: with a robot in TAPE, the cartridge is back in its
# slot after an operation (ndmjob loads it first and unloads it after).
cartridge_home() {
    local i r="" s="" agent=""
    for ((i = 0; i < ${#TAPE[@]}; i++)); do
        case "${TAPE[i]}" in
            -R) agent="${TAPE[i+1]}" ;;
            -r) r="${TAPE[i+1]}" ;;
            -m) s="${TAPE[i+1]#@}" ;;
        esac
    done
    [ -n "$agent" ] || return 0
    run_ndmjob 60 "$WORK/$1.robot.out" -q -R "$agent" -r "$r"
    grep -qE "@$s +[A-Z]+ +Full" "$WORK/$1.robot.out" ||
        { grep -E '@[0-9]+ ' "$WORK/$1.robot.out" >&2; echo "FAIL: [$1] slot $s is not full again" >&2; return 1; }
}

# unload_after_failure LABEL: a failed operation may leave the cartridge in
# the drive (ndmjob unloads only after a clean end); put it back so that the
# next mode finds the drive empty.
unload_after_failure() {
    local i r="" agent="" drive=""
    for ((i = 0; i < ${#TAPE[@]}; i++)); do
        case "${TAPE[i]}" in
            -R) agent="${TAPE[i+1]}" ;;
            -r) r="${TAPE[i+1]}" ;;
            -f) drive="${TAPE[i+1]}" ;;
        esac
    done
    [ -n "$agent" ] || return 0
    run_ndmjob 60 "$WORK/$1.unload.out" -o unload -R "$agent" -r "$r" -T "$agent" -f "$drive" || true
}

# ok_run OUT: the operation ended well (ndmjob exits 0 regardless)
ok_run() { op_ok "$1" && grep -q '"Operation ended OKAY"' "$1"; }
show_fail() {  # show_fail OUT WHAT
    echo "--- $1 (last lines):" >&2
    grep -vE '^SESS " {9}' "$1" | tail -40 >&2
    [ -n "${NDMPD_LOG:-}" ] && [ -f "$NDMPD_LOG" ] && { echo "--- ndmpd log (last lines):" >&2; tail -30 "$NDMPD_LOG" >&2; }
    [ -n "${NDMPD2_LOG:-}" ] && [ -f "$NDMPD2_LOG" ] && { echo "--- second ndmpd's log (last lines):" >&2; tail -20 "$NDMPD2_LOG" >&2; }
    echo "FAIL: $2" >&2
    unload_after_failure "$(basename "$1" .out)"
}

RESULTS=()
# roundtrip LABEL DATA_AGENT FS PREFIX RESTORE_HOST_DIR CONN_ARGS...
# (TAPE set by tape_args).  Returns 0 if every step passed.
roundtrip() {
    local label="$1" d="$2" fs="$3" prefix="$4" rdir="$5"; shift 5
    local conn=(-D "$d" "$@") t0 tb tt tr
    local common=("${conn[@]}" "${TAPE[@]}" -B tar -b "$BLOCKS")
    local o="$WORK/$label"
    ilog "[$label] backup: $(echo "ndmjob -c ${conn[*]} ${TAPE[*]} -B tar -C $fs" | sed -E 's#(/4[mt]),[^ ]*#\1,...#g')"

    t0=$(date +%s.%N)
    run_ndmjob "$OT" "$o.backup.out" -v -c "${common[@]}" -C "$fs" -I "$o.backup.idx"
    tb=$(elapsed "$t0")
    ok_run "$o.backup.out" || { show_fail "$o.backup.out" "[$label] backup"; return 1; }
    local kb nfh
    kb=$(grep -oE 'DATA: bytes [0-9]+KB' "$o.backup.out" | tail -1 | grep -oE '[0-9]+')
    nfh=$(index_entries "$o.backup.idx")
    # File history: DHf (path-based) must name every entry of the tree;
    # node-based history (DHd/DHn) must have a node per entry.
    if grep -q '^DHf ' "$o.backup.idx"; then
        index_paths "$o.backup.idx" >"$o.backup.paths"
        if LC_ALL=C comm -23 "$WORK/tree.paths" "$o.backup.paths" | grep -q .; then
            echo "--- entries missing from the file history:" >&2
            LC_ALL=C comm -23 "$WORK/tree.paths" "$o.backup.paths" | head -20 >&2
            echo "FAIL: [$label] file history incomplete" >&2; return 1
        fi
    else
        local nn; nn=$(grep -c '^DHn ' "$o.backup.idx")
        [ "$nn" -ge $((n_tree - 1)) ] || { echo "FAIL: [$label] file history: $nfh lines, $nn nodes for $n_tree entries" >&2; return 1; }
    fi
    cartridge_home "$label.backup" || return 1
    ilog "[$label] backup OK in ${tb}s: ${kb:-?} KB, $nfh file-history entries"

    t0=$(date +%s.%N)
    run_ndmjob "$OT" "$o.toc.out" -v -t "${common[@]}" -I "$o.toc.idx"
    tt=$(elapsed "$t0")
    ok_run "$o.toc.out" || { show_fail "$o.toc.out" "[$label] table of contents (-t)"; return 1; }
    local ntoc; ntoc=$(index_entries "$o.toc.idx")
    [ "$ntoc" -gt 0 ] || { show_fail "$o.toc.out" "[$label] -t gave no file history"; return 1; }
    if grep -q '^DHf ' "$o.toc.idx" && grep -q '^DHf ' "$o.backup.idx"; then
        index_paths "$o.toc.idx" >"$o.toc.paths"
        cmp -s "$o.backup.paths" "$o.toc.paths" ||
            { diff "$o.backup.paths" "$o.toc.paths" | head -20 >&2; echo "FAIL: [$label] TOC names differ from the backup's file history" >&2; return 1; }
    fi
    ilog "[$label] TOC OK in ${tt}s: $ntoc entries"

    mkdir -p "$rdir"
    t0=$(date +%s.%N)
    run_ndmjob "$OT" "$o.restore.out" -v -x "${common[@]}" -C "$prefix"
    tr=$(elapsed "$t0")
    ok_run "$o.restore.out" || { show_fail "$o.restore.out" "[$label] restore"; return 1; }
    cartridge_home "$label.restore" || return 1
    local skip=()
    [ "${COMPARE_ROOT:-1}" = 0 ] && skip=(--no-root)
    tree_manifest "${skip[@]}" "$TREE" >"$o.src.manifest"
    tree_manifest "${skip[@]}" "$rdir" >"$o.restore.manifest"
    if ! diff -u "$o.src.manifest" "$o.restore.manifest" >"$o.manifest.diff"; then
        echo "--- manifest differences (source -, restored +):" >&2
        grep -E '^[-+][^-+]' "$o.manifest.diff" | cut -c1-300 | head -40 >&2
        echo "FAIL: [$label] the restored tree differs" >&2; return 1
    fi
    ilog "[$label] restore OK in ${tr}s; manifests equal ($(wc -l <"$o.src.manifest") entries)"
    RESULTS+=("$label: backup ${tb}s (${kb:-?} KB, $nfh FH), toc ${tt}s ($ntoc), restore ${tr}s, identical")
    return 0
}

fails=0
slot=1024
for m in "${MODES[@]}"; do
    if [ "$PEER" = ndmjob ]; then
        fs="$TREE"; prefix="$RESTORE_ROOT/$m"; rdir="$prefix"
        case "$m" in
            local) tape_args peer 1024 "$m"; roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" || fails=$((fails + 1)) ;;
            tcp)   tape_args peer 1024 "$m"; roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$A" || fails=$((fails + 1)) ;;
            swap)  ilog "[swap] skipped: ndmjob's server has no DATA_LISTEN"; RESULTS+=("swap: skipped (peer)") ;;
            threeway|threeway-peer)
                start_peer2
                tape_args peer2 1024 "$m"
                roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$PEER2_AGENT" || fails=$((fails + 1)) ;;
        esac
        continue
    fi
    if [ "${NDMPD_PATHS:-export}" = host ]; then fs="$TREE"; prefix="$RESTORE_ROOT/$m"
    else fs="/data"; prefix="/restore/$m"; fi
    rdir="$RESTORE_ROOT/$m"
    case "$m" in
        local) tape_args ndmpd "$slot" "$m"; roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" || fails=$((fails + 1)) ;;
        tcp)   tape_args ndmpd "$slot" "$m"; roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$A" || fails=$((fails + 1)) ;;
        swap)  tape_args ndmpd "$slot" "$m"; roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$A" -o swap-connect || fails=$((fails + 1)) ;;
        threeway)
            if [ -z "$A2" ]; then
                start_second_ndmpd "$NDMPD_BIN" "$SRC"
                A2="127.0.0.1:$NDMPD2_PORT/4m,$DMA_USER,$DMA_PASSWORD"
                ilog "second ndmpd (tape server) pid $NDMPD2_PID on 127.0.0.1:$NDMPD2_PORT"
            fi
            tape_args ndmpd2 1024 "$m"
            roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$A2" || fails=$((fails + 1)) ;;
        threeway-peer)
            if [ -z "${PEER_PID:-}" ]; then
                peer_start "$WORK/peer" 10000 || die "ndmjob's server did not start"
                ilog "peer (tape server): ndmjob's own server, pid $PEER_PID on 127.0.0.1:$PEER_PORT"
            fi
            tape_args peer 1024 "$m"
            roundtrip "$m" "$A" "$fs" "$prefix" "$rdir" -T "$PEER_AGENT" || fails=$((fails + 1)) ;;
    esac
    slot=$((slot + 1))
done

echo "==== ndmjob data roundtrips ($([ "$PEER" = ndmjob ] && echo "against ndmjob's own server" || echo "against ndmpd")):"
for r in "${RESULTS[@]}"; do echo "  $r"; done
[ "$fails" = 0 ] || die "$fails mode(s) failed"
ilog "ndmjob data test passed"
