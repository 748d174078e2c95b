#!/bin/bash
# data_bench.sh -- throughput of ndmpd's data server, driven by Amanda's
# ndmjob (the DMA) over a LOCAL data connection to the embedded library's
# drive, against GNU tar on the same filesystem and against ndmjob's own
# NDMP server (data + tape, file tape; tests/interop/ndmjob_peer.sh).
# Prints figures; asserts nothing about time.
#
#   [MIB=1024] [FILES=100000] [ROUNDS=3] tests/bench/data_bench.sh BUILD_DIR
#
# Measures, in one run, the median of ROUNDS rounds of each (contenders
# alternating within a round, page cache warm, `sync` before each
# measurement so that none pays for another's writeback):
#   1. backup of a tree of MIB MiB (16 random-content files of MIB/16 MiB)
#      plus SMALL small files of 1-8 KiB, HIST=y (ndmjob -I):
#        ndmpd         ndmjob -c, LOCAL, robot-loaded vtl0.drive0 (a fresh
#                      cartridge per round while there are some)
#        tar           tar -cf FILE (and the same plus an fdatasync of FILE:
#                      the cartridge is fdatasynced at its filemark)
#        ndmjob-srv    ndmjob's own server as data + tape server, file tape
#      ndmpd's wall clock (what the DMA sees; ndmjob adds seconds of its own
#      polling) and its data phase (daemon log: "backup of ... started" to
#      "data operation ended"); ndmpd's peak RSS (a fresh daemon per
#      measurement: VmHWM, and VmRSS sampled every 50 ms during the job).
#   2. backup of FILES files of 4 KiB (1000 per directory), HIST=y: ndmpd
#      against tar -cf (MB/s and files/s).
#   3. full restore of test 1's image: ndmpd (ndmjob -x, LOCAL) against
#      tar -xf of test 1's tar file, each into an empty directory on the
#      same filesystem; data phase from the daemon log ("recovery into ...
#      started" to "data operation ended").
# MB = 10^6 bytes of source data (the tree's file contents), the same
# count for every contender.
#
# Free memory that lay idle is slow to touch on a VM whose balloon reports
# free pages to the host (virtio free page reporting, /sys/module/
# page_reporting): writing 1 GiB into the page cache measured 0.19 s right
# after freeing memory and 1.5-1.8 s after 6 s idle, on this machine.  A
# contender that reuses the pages its last round freed (tar's rm'd file)
# then beats one whose output stays (ndmpd's cartridges), by the machine,
# not the code.  So right before each timed run, after its sync, every
# contender gets the same warm-up: WARM_MIB of memory touched and freed
# (a file in /dev/shm written and removed).
#
# Env: MIB (default 1024; the image must fit a 2048 MB cartridge), FILES
# (default 100000), SMALL (default 2000), ROUNDS (default 3), NDMP_BLOCKS
# (record size in 512-byte blocks, default 20, as ndmjob_data_test.sh),
# WARM_MIB (default 2048; 0: no warm-up),
# OP_TIMEOUT (seconds per operation, default 1800), NDMPD (the daemon
# binary, default BUILD_DIR/ndmpd/ndmpd; copied to the scratch directory
# first so that a rebuild during the run does not change it), NDMJOB_SHIM
# (default BUILD_DIR/tests/libndmjob_shim.so), SKIP_PEER=1, PERF=1 (after
# the measurements, one more ndmpd backup of each tree and one restore
# under `perf record`; their top symbols are printed), KEEP=1 (keep the
# scratch directory).
#
# Needs root: it runs in a private network namespace (ndmjob's server binds
# 0.0.0.0) where ndmpd, the peer and ndmjob all live on loopback.  A quick
# run: MIB=128 FILES=10000 ROUNDS=1 (measuring takes ~25 s; about a minute
# with making the trees and removing them on a busy machine).  The full
# size takes ~3 minutes and ~8 GB of scratch space under /tmp.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
[ $# -ge 1 ] || { sed -n '2,59p' "$0" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "data_bench: run as root" >&2; exit 2; }
BUILD="$(cd "$1" && pwd)" || exit 2

if [ -z "${DATA_BENCH_IN_NETNS:-}" ]; then
    DATA_BENCH_IN_NETNS=1 exec unshare -n -- "$0" "$@"
fi
ip link set lo up || { echo "data_bench: cannot bring lo up in the namespace" >&2; exit 1; }

MIB="${MIB:-1024}"
FILES="${FILES:-100000}"
SMALL="${SMALL:-2000}"
ROUNDS="${ROUNDS:-3}"
BLOCKS="${NDMP_BLOCKS:-20}"
OT="${OP_TIMEOUT:-1800}"
export NDMJOB_SHIM="${NDMJOB_SHIM:-$BUILD/tests/libndmjob_shim.so}"
NDMPD_SRC_BIN="${NDMPD:-$BUILD/ndmpd/ndmpd}"

# shellcheck source=SCRIPTDIR/../interop/lib.sh
. "$SRC/tests/interop/lib.sh"
# shellcheck source=SCRIPTDIR/../interop/data_lib.sh
. "$SRC/tests/interop/data_lib.sh"
# shellcheck source=SCRIPTDIR/../interop/ndmjob_peer.sh
. "$SRC/tests/interop/ndmjob_peer.sh"

[ -x "$NDMJOB" ] || die "$NDMJOB missing"
[ -f "$NDMJOB_SHIM" ] || die "no shim at $NDMJOB_SHIM (build the ndmjob_shim target)"
[ -x "$NDMPD_SRC_BIN" ] || die "no ndmpd at $NDMPD_SRC_BIN"

SAMPLER_PID=""
PERF_PID=""
bench_cleanup() {
    [ -n "${WARM_FILE:-}" ] && rm -f "$WARM_FILE"
    [ -n "$PERF_PID" ] && { kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null; }
    [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; }
    peer_stop
    [ -n "${DATA_BENCH_DEBUG:-}" ] && ilog "peer stopped"
    if [ "${KEEP:-0}" = 1 ]; then
        stop_ndmpd >/dev/null 2>&1
        echo "kept $WORK" >&2
        return
    fi
    cleanup
    [ -n "${DATA_BENCH_DEBUG:-}" ] && ilog "scratch removed"
}
trap bench_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

NDMPD_BIN="$WORK/bin/ndmpd"
mkdir -p "$WORK/bin" "$WORK/logs" "$WORK/out" "$WORK/cmp" "$WORK/restore"
cp "$NDMPD_SRC_BIN" "$NDMPD_BIN" || die "cannot copy $NDMPD_SRC_BIN"

now() { date +%s.%N; }
WARM_FILE="/dev/shm/ndmpd-data-bench-warm.$$"
warm_memory() {  # touches and frees WARM_MIB MiB (see the header)
    [ "${WARM_MIB:-2048}" -gt 0 ] || return 0
    dd if=/dev/zero of="$WARM_FILE" bs=1M count="${WARM_MIB:-2048}" status=none 2>/dev/null
    rm -f "$WARM_FILE"
}
# median of the arguments (numbers); "-" if none
median() {
    [ $# -gt 0 ] || { echo -; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
rate() { awk -v b="$1" -v t="$2" 'BEGIN { if (t == "-" || t <= 0) print "-"; else printf "%.1f", b / t / 1e6 }'; }
per_s() { awk -v n="$1" -v t="$2" 'BEGIN { if (t == "-" || t <= 0) print "-"; else printf "%.0f", n / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }

# seconds from the first line matching START to the first later line
# matching END in an ndmpd log (timestamps to the millisecond)
log_phase() {  # log_phase LOG START_ERE END_ERE
    local ts
    ts="$(sed -E 's/^<[0-9]>//' "$1" | awk -v s="$2" -v e="$3" '
        !a && $0 ~ s { a = $1 " " $2; next }
        a && $0 ~ e { print a; print $1 " " $2; exit }')"
    [ "$(echo "$ts" | grep -c .)" = 2 ] || { echo -; return; }
    local t0 t1
    t0="$(date -d "$(echo "$ts" | sed -n 1p)" +%s.%N)"
    t1="$(date -d "$(echo "$ts" | sed -n 2p)" +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# ---- the trees
BIG="$WORK/big"
MANY="$WORK/many"
ilog "making the trees: $MIB MiB in 16 files + $SMALL small files; $FILES files of 4 KiB"
mkdir -p "$BIG/large" "$MANY"
kib_each=$((MIB * 1024 / 16))
for i in $(seq -w 1 16); do
    head -c "$((kib_each * 1024))" /dev/urandom >"$BIG/large/file$i.bin" || die "cannot write the tree"
done
# small files (1-8 KiB) 100 per directory; FILES files of 4 KiB, 1000 per
# directory; contents are slices of a random buffer (no compression here).
perl -e '
    my ($big, $small, $many, $files) = @ARGV;
    open(my $r, "<", "/dev/urandom") or die; my $buf; read($r, $buf, 8 << 20) == 8 << 20 or die;
    my $len = length $buf; srand(12345);
    for my $i (0 .. $small - 1) {
        my $d = sprintf("%s/small/d%03d", $big, int($i / 100)); mkdir "$big/small"; mkdir $d;
        my $sz = 1024 + int(rand(7 * 1024 + 1));
        open(my $f, ">", sprintf("%s/f%05d.dat", $d, $i)) or die "$d: $!";
        print $f substr($buf, int(rand($len - 8192)), $sz); close $f or die;
    }
    for my $i (0 .. $files - 1) {
        my $d = sprintf("%s/d%04d", $many, int($i / 1000)); mkdir $d;
        open(my $f, ">", sprintf("%s/f%06d.dat", $d, $i)) or die "$d: $!";
        print $f substr($buf, ($i * 4099) % ($len - 4096), 4096); close $f or die;
    }' "$BIG" "$SMALL" "$MANY" "$FILES" || die "cannot make the small files"
BIG_BYTES="$(find "$BIG" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
BIG_N="$(find "$BIG" | wc -l)"
MANY_BYTES="$(find "$MANY" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
MANY_N="$(find "$MANY" | wc -l)"
ilog "big tree: $BIG_N entries, $BIG_BYTES bytes; many-files tree: $MANY_N entries, $MANY_BYTES bytes"
warm() { find "$@" -type f -print0 | xargs -0 -r cat >/dev/null; }
warm "$BIG" "$MANY"

# ---- ndmpd: a fresh daemon per measurement (VmHWM is since start)
A=""
start_daemon() {
    start_ndmpd "$NDMPD_BIN" "$SRC" --export "/big=$BIG" --export "/many=$MANY" \
        --export "/restore=$WORK/restore"
    A="127.0.0.1:$NDMPD_PORT/4m,$DMA_USER,$DMA_PASSWORD"
}
# VmRSS sampled every 50 ms into FILE (KiB, the max so far)
sampler_start() {  # sampler_start PID FILE
    local pid="$1" out="$2"
    echo 0 >"$out"
    (
        trap 'exit 0' TERM
        max=0
        while kill -0 "$pid" 2>/dev/null; do
            while read -r k v _; do
                if [ "$k" = VmRSS: ]; then
                    [ "$v" -gt "$max" ] && { max=$v; echo "$max" >"$out"; }
                    break
                fi
            done <"/proc/$pid/status" 2>/dev/null
            sleep 0.05
        done
    ) &
    SAMPLER_PID=$!
}
sampler_stop() {
    [ -n "$SAMPLER_PID" ] || return 0
    kill "$SAMPLER_PID" 2>/dev/null
    wait "$SAMPLER_PID" 2>/dev/null
    SAMPLER_PID=""
}
vm_hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
HZ="$(getconf CLK_TCK)"
# user + system CPU seconds of a process so far (field 2, "(ndmpd)", has no blank)
cpu_s() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null; }
ok_run() { op_ok "$1" && grep -q '"Operation ended OKAY"' "$1"; }
show_fail() {  # show_fail OUT WHAT
    echo "--- $1 (last lines):" >&2
    grep -vE '^SESS " {9}' "$1" | tail -25 >&2
    [ -f "${NDMPD_LOG:-/nonexistent}" ] && { echo "--- ndmpd log (last lines):" >&2; tail -15 "$NDMPD_LOG" >&2; }
    echo "ERROR: $2 failed (figure left out)" >&2
}

NSLOTS=12
slot_n=0
next_slot() { SLOT=$((1024 + slot_n % NSLOTS)); slot_n=$((slot_n + 1)); }  # sets SLOT

# ndmpd_job LABEL KIND(backup|restore) ndmjob-args...: one measurement on a
# fresh daemon; sets T_WALL, T_DATA, RSS_HWM, RSS_SAMPLED, CPU (the daemon's
# CPU seconds, start-up included) (T_WALL empty on failure)
ndmpd_job() {
    local label="$1" kind="$2"; shift 2
    T_WALL=""; T_DATA=""; RSS_HWM=""; RSS_SAMPLED=""; CPU=""
    start_daemon
    local out="$WORK/out/$label.out" t0
    sync
    warm_memory
    sampler_start "$NDMPD_PID" "$WORK/out/$label.rss"
    t0=$(now)
    run_ndmjob "$OT" "$out" "$@" -D "$A" -R "$A" -r vtl0.changer -f vtl0.drive0 -B tar -b "$BLOCKS"
    T_WALL=$(elapsed "$t0")
    sampler_stop
    RSS_HWM="$(vm_hwm "$NDMPD_PID")"
    RSS_SAMPLED="$(cat "$WORK/out/$label.rss")"
    CPU="$(cpu_s "$NDMPD_PID")"
    stop_ndmpd >/dev/null 2>&1
    cp "$NDMPD_LOG" "$WORK/logs/$label.log"
    if ! ok_run "$out"; then
        show_fail "$out" "$label"
        T_WALL=""; return 1
    fi
    if [ "$kind" = backup ]; then
        T_DATA="$(log_phase "$WORK/logs/$label.log" ' backup of .* started' ' data operation ended')"
    else
        T_DATA="$(log_phase "$WORK/logs/$label.log" '[^y] recovery into .* started' ' data operation ended')"
    fi
    grep -q 'data operation ended: successful' "$WORK/logs/$label.log" ||
        { show_fail "$out" "$label (daemon log: not successful)"; T_WALL=""; return 1; }
    return 0
}

# timed COMMAND...: T (seconds) and CPU (user + system seconds, if
# /usr/bin/time is there), bounded; 1 on failure
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f '%U %S' -o "$WORK/time.out")
timed() {
    local t0
    sync
    rm -f "$WORK/time.out"
    warm_memory
    t0=$(now)
    timeout -k 5 "$OT" "${TIMER[@]}" "$@" || { echo "ERROR: $* failed" >&2; T=""; return 1; }
    T=$(elapsed "$t0")
    CPU="$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/time.out" 2>/dev/null)"
}

if [ "${SKIP_PEER:-0}" != 1 ]; then
    peer_start "$WORK/peer" 10000 || die "ndmjob's server did not start"
    ilog "peer: ndmjob's own server, pid $PEER_PID on 127.0.0.1:$PEER_PORT (private netns)"
fi

declare -a B_WALL=() B_DATA=() B_HWM=() B_SMP=() T_TAR=() T_TARSYNC=() T_PEER=()
declare -a M_WALL=() M_DATA=() M_HWM=() M_SMP=() M_TAR=()
declare -a R_WALL=() R_DATA=() R_HWM=() R_SMP=() R_TAR=()
declare -a B_CPU=() C_TAR=() M_CPU=() C_MTAR=() R_CPU=() C_RTAR=()
TARFILE="$WORK/cmp/big.tar"
BIG_SLOT=""
fh_big="-"; fh_many="-"; kb_big="-"

# ---- 1. backup of the big tree
for r in $(seq 1 "$ROUNDS"); do
    warm "$BIG"
    next_slot; s=$SLOT
    ilog "[1.$r] ndmpd backup of /big (slot @$s)"
    if ndmpd_job "big-$r" backup -c -m "@$s" -C /big -I "$WORK/out/big-$r.idx"; then
        B_WALL+=("$T_WALL"); [ "$T_DATA" != - ] && B_DATA+=("$T_DATA")
        B_HWM+=("$RSS_HWM"); B_SMP+=("$RSS_SAMPLED"); BIG_SLOT="$s"; B_CPU+=("$CPU")
        fh_big="$(index_entries "$WORK/out/big-$r.idx")"
        kb_big="$(grep -oE 'DATA: bytes [0-9]+KB' "$WORK/out/big-$r.out" | tail -1 | grep -oE '[0-9]+')"
        ilog "[1.$r] ndmpd: wall ${T_WALL}s, data phase ${T_DATA}s, CPU ${CPU}s, VmHWM ${RSS_HWM} KiB, sampled ${RSS_SAMPLED} KiB, $fh_big FH entries"
    fi
    rm -f "$TARFILE"
    ilog "[1.$r] tar -cf"
    if timed tar -cf "$TARFILE" -C "$WORK" big; then
        T_TAR+=("$T"); [ -n "$CPU" ] && C_TAR+=("$CPU")
        t0=$(now); sync -d "$TARFILE"; ts=$(elapsed "$t0")
        T_TARSYNC+=("$(awk -v a="$T" -v b="$ts" 'BEGIN { printf "%.3f", a + b }')")
        ilog "[1.$r] tar: ${T}s (+ fdatasync ${ts}s), CPU ${CPU}s"
    fi
    if [ "${SKIP_PEER:-0}" != 1 ]; then
        rm -f "$WORK"/peer/tapes/big-*
        tape="$(peer_new_tape "big-$r")"
        warm "$BIG"
        ilog "[1.$r] ndmjob's server backup"
        out="$WORK/out/peer-big-$r.out"
        sync
        warm_memory
        t0=$(now)
        run_ndmjob "$OT" "$out" -c -D "$PEER_AGENT" -f "$tape" -B tar -b "$BLOCKS" -C "$BIG" -I "$WORK/out/peer-big-$r.idx"
        t=$(elapsed "$t0")
        if ok_run "$out"; then
            T_PEER+=("$t")
            ilog "[1.$r] ndmjob's server: ${t}s, $(index_entries "$WORK/out/peer-big-$r.idx") FH entries"
        else
            show_fail "$out" "ndmjob's server backup"
        fi
    fi
done
[ "${SKIP_PEER:-0}" != 1 ] && rm -f "$WORK"/peer/tapes/big-*

# ---- 2. many small files
for r in $(seq 1 "$ROUNDS"); do
    warm "$MANY"
    next_slot; s=$SLOT
    # keep test 1's cartridge for test 3
    [ "$s" = "$BIG_SLOT" ] && { next_slot; s=$SLOT; }
    ilog "[2.$r] ndmpd backup of /many (slot @$s)"
    if ndmpd_job "many-$r" backup -c -m "@$s" -C /many -I "$WORK/out/many-$r.idx"; then
        M_WALL+=("$T_WALL"); [ "$T_DATA" != - ] && M_DATA+=("$T_DATA")
        M_HWM+=("$RSS_HWM"); M_SMP+=("$RSS_SAMPLED"); M_CPU+=("$CPU")
        fh_many="$(index_entries "$WORK/out/many-$r.idx")"
        ilog "[2.$r] ndmpd: wall ${T_WALL}s, data phase ${T_DATA}s, CPU ${CPU}s, VmHWM ${RSS_HWM} KiB, $fh_many FH entries"
    fi
    rm -f "$WORK/cmp/many.tar"
    if timed tar -cf "$WORK/cmp/many.tar" -C "$WORK" many; then
        M_TAR+=("$T"); [ -n "$CPU" ] && C_MTAR+=("$CPU"); ilog "[2.$r] tar: ${T}s, CPU ${CPU}s"
    fi
    rm -f "$WORK/cmp/many.tar"
done

# ---- 3. restore of test 1's image
restore_check() {  # restore_check DIR: same files and bytes as the big tree
    local n b
    n="$(find "$1" -type f | wc -l)"
    b="$(find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
    [ "$n" = "$(find "$BIG" -type f | wc -l)" ] && [ "$b" = "$BIG_BYTES" ] ||
        echo "WARNING: $1 holds $n files, $b bytes; the source $BIG_BYTES bytes" >&2
}
if [ -z "$BIG_SLOT" ] || [ ! -f "$TARFILE" ]; then
    ilog "[3] skipped: no image from test 1"
else
    for r in $(seq 1 "$ROUNDS"); do
        rm -rf "$WORK/restore/r"; mkdir -p "$WORK/restore/r"
        ilog "[3.$r] ndmpd restore (slot @$BIG_SLOT)"
        if ndmpd_job "restore-$r" restore -x -m "@$BIG_SLOT" -C /restore/r; then
            R_WALL+=("$T_WALL"); [ "$T_DATA" != - ] && R_DATA+=("$T_DATA")
            R_HWM+=("$RSS_HWM"); R_SMP+=("$RSS_SAMPLED"); R_CPU+=("$CPU")
            ilog "[3.$r] ndmpd: wall ${T_WALL}s, data phase ${T_DATA}s, CPU ${CPU}s, VmHWM ${RSS_HWM} KiB"
            if [ -d "$WORK/restore/r/large" ]; then restore_check "$WORK/restore/r"
            else restore_check "$WORK/restore/r/big"; fi
        fi
        rm -rf "$WORK/restore/r"; sync
        mkdir -p "$WORK/restore/t"
        if timed tar -xf "$TARFILE" -C "$WORK/restore/t"; then
            R_TAR+=("$T"); [ -n "$CPU" ] && C_RTAR+=("$CPU"); ilog "[3.$r] tar -xf: ${T}s, CPU ${CPU}s"
            restore_check "$WORK/restore/t/big"
        fi
        rm -rf "$WORK/restore/t"; sync
    done
fi

# ---- optional profile
if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    for what in backup many restore; do
        start_daemon
        perf record -F 999 -p "$NDMPD_PID" -o "$WORK/perf.$what.data" >/dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.5
        if [ "$what" != restore ]; then
            next_slot; s=$SLOT; [ "$s" = "$BIG_SLOT" ] && { next_slot; s=$SLOT; }
            fs=/big; [ "$what" = many ] && fs=/many
            run_ndmjob "$OT" "$WORK/out/perf.out" -c -m "@$s" -C "$fs" -I "$WORK/out/perf.idx" \
                -D "$A" -R "$A" -r vtl0.changer -f vtl0.drive0 -B tar -b "$BLOCKS"
        else
            rm -rf "$WORK/restore/r"; mkdir -p "$WORK/restore/r"
            run_ndmjob "$OT" "$WORK/out/perf.out" -x -m "@$BIG_SLOT" -C /restore/r -D "$A" -R "$A" -r vtl0.changer -f vtl0.drive0 -B tar -b "$BLOCKS"
        fi
        kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null; PERF_PID=""
        stop_ndmpd >/dev/null 2>&1
        echo "==== perf: ndmpd during a $what (self time, top symbols)" | sed 's/a many/a many-files backup/'
        grep -E 'data operation ended' "$NDMPD_LOG" | sed -E 's/^<[0-9]>/     /'
        perf report -i "$WORK/perf.$what.data" --stdio --no-children -g none --percent-limit 0.7 \
            --sort comm,dso,symbol 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -E 's/ +$//' | cut -c1-130 | head -30
        rm -rf "$WORK/restore/r"
    done
fi

# ---- the table
mb_big="$(awk -v b="$BIG_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }')"
mb_many="$(awk -v b="$MANY_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }')"
bw=$(median "${B_WALL[@]}"); bd=$(median "${B_DATA[@]}"); bt=$(median "${T_TAR[@]}")
bts=$(median "${T_TARSYNC[@]}"); bp=$(median "${T_PEER[@]}")
mw=$(median "${M_WALL[@]}"); md=$(median "${M_DATA[@]}"); mt=$(median "${M_TAR[@]}")
rw=$(median "${R_WALL[@]}"); rd=$(median "${R_DATA[@]}"); rt=$(median "${R_TAR[@]}")
maxk() { printf '%s\n' "$@" | sort -n | tail -1; }
row() { printf '  %-44s %9s %10s %10s %8s\n' "$@"; }

echo
echo "==== data_bench: medians of $ROUNDS round(s); record ${BLOCKS}x512 B; MB = 10^6 B of file contents"
echo "     CPU s: ndmpd's user+system seconds (whole daemon, start to stop); tar's via /usr/bin/time"
echo "     load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPU(s) (other jobs may share the machine)"
echo "1. backup: $mb_big MB in $BIG_N entries (16 large + $SMALL small files), HIST=y ($fh_big FH entries; image ${kb_big} KB)"
row "contender" "seconds" "MB/s" "vs tar" "CPU s"
row "ndmpd via ndmjob (LOCAL, vtl0.drive0), wall" "$bw" "$(rate "$BIG_BYTES" "$bw")" "$(ratio "$bt" "$bw")" "$(median "${B_CPU[@]}")"
row "ndmpd data phase (daemon log)" "$bd" "$(rate "$BIG_BYTES" "$bd")" "$(ratio "$bt" "$bd")" ""
row "tar -cf FILE" "$bt" "$(rate "$BIG_BYTES" "$bt")" "1.00" "$(median "${C_TAR[@]}")"
row "tar -cf FILE + fdatasync FILE" "$bts" "$(rate "$BIG_BYTES" "$bts")" "$(ratio "$bt" "$bts")" ""
[ "${SKIP_PEER:-0}" != 1 ] && row "ndmjob's own server (data+tape, file tape)" "$bp" "$(rate "$BIG_BYTES" "$bp")" "$(ratio "$bt" "$bp")" ""
echo "   ndmpd/tar (throughput): wall $(ratio "$bt" "$bw"), data phase $(ratio "$bt" "$bd"); ndmpd/tar+fdatasync: wall $(ratio "$bts" "$bw"), data phase $(ratio "$bts" "$bd")"
[ "${SKIP_PEER:-0}" != 1 ] && echo "   ndmpd/ndmjob-server (throughput, wall vs wall): $(ratio "$bp" "$bw")"
echo "   ndmpd peak RSS: VmHWM median $(mib "$(median "${B_HWM[@]}")") MiB, max $(mib "$(maxk "${B_HWM[@]}")") MiB; sampled VmRSS max $(mib "$(maxk "${B_SMP[@]}")") MiB (goal <= 64 MiB)"
echo "2. backup: $FILES files of 4 KiB ($mb_many MB, $MANY_N entries), HIST=y ($fh_many FH entries)"
row "contender" "seconds" "MB/s" "files/s" "CPU s"
row "ndmpd via ndmjob, wall" "$mw" "$(rate "$MANY_BYTES" "$mw")" "$(per_s "$FILES" "$mw")" "$(median "${M_CPU[@]}")"
row "ndmpd data phase (daemon log)" "$md" "$(rate "$MANY_BYTES" "$md")" "$(per_s "$FILES" "$md")" ""
row "tar -cf FILE" "$mt" "$(rate "$MANY_BYTES" "$mt")" "$(per_s "$FILES" "$mt")" "$(median "${C_MTAR[@]}")"
echo "   ndmpd/tar: wall $(ratio "$mt" "$mw"), data phase $(ratio "$mt" "$md"); ndmpd VmHWM max $(mib "$(maxk "${M_HWM[@]}")") MiB"
echo "3. full restore of test 1's image ($mb_big MB) into an empty directory"
row "contender" "seconds" "MB/s" "vs tar" "CPU s"
row "ndmpd via ndmjob -x (LOCAL), wall" "$rw" "$(rate "$BIG_BYTES" "$rw")" "$(ratio "$rt" "$rw")" "$(median "${R_CPU[@]}")"
row "ndmpd data phase (daemon log)" "$rd" "$(rate "$BIG_BYTES" "$rd")" "$(ratio "$rt" "$rd")" ""
row "tar -xf FILE" "$rt" "$(rate "$BIG_BYTES" "$rt")" "1.00" "$(median "${C_RTAR[@]}")"
echo "   ndmpd/tar: wall $(ratio "$rt" "$rw"), data phase $(ratio "$rt" "$rd"); ndmpd VmHWM max $(mib "$(maxk "${R_HWM[@]}")") MiB"
echo "   per-round seconds: backup ndmpd [${B_WALL[*]}] data [${B_DATA[*]}] tar [${T_TAR[*]}] peer [${T_PEER[*]}]"
echo "                      many ndmpd [${M_WALL[*]}] data [${M_DATA[*]}] tar [${M_TAR[*]}]"
echo "                      restore ndmpd [${R_WALL[*]}] data [${R_DATA[*]}] tar [${R_TAR[*]}]"
