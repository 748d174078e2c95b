# lib.sh -- helpers for the interoperability tests: start and stop ndmpd on
# an ephemeral loopback port, run Amanda's ndmjob (the DMA) with a time
# limit, and judge it by its output.  Source it; do not run it.
#
# Every wait is bounded; only processes started here are stopped, by PID.

NDMJOB="${NDMJOB:-/usr/lib/amanda/ndmjob}"

ilog() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "FAIL: $*" >&2; exit 1; }

# A scratch directory removed when the test exits (and the daemon stopped).
WORK="$(mktemp -d /tmp/ndmpd-interop-XXXXXX)"
NDMPD_PID=""
cleanup() {
    [ -n "$NDMPD_PID" ] && stop_ndmpd >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_ndmpd NDMPD_BINARY SOURCE_DIR [extra args...]
# Starts ndmpd on the shipped configuration (or $NDMPD_CONFIG) with a login
# dma/$DMA_PASSWORD; sets NDMPD_PID, NDMPD_PORT, NDMPD_STATE, NDMPD_LOG.
DMA_USER=dma
DMA_PASSWORD="interop-$$-pw"
start_ndmpd() {
    local bin="$1" src="$2"; shift 2
    NDMPD_STATE="$WORK/state"
    NDMPD_LOG="$WORK/ndmpd.log"
    printf '%s\n' "$DMA_PASSWORD" >"$WORK/dma.password"
    chmod 600 "$WORK/dma.password"
    rm -f "$WORK/listen"
    "$bin" --config "${NDMPD_CONFIG:-$src/conf/ndmpd.toml}" --listen 127.0.0.1:0 \
        --state-dir "$NDMPD_STATE" --user "$DMA_USER" --password-file "$WORK/dma.password" \
        --listen-file "$WORK/listen" --foreground "$@" >"$NDMPD_LOG" 2>&1 &
    NDMPD_PID=$!
    local i
    for i in $(seq 1 200); do
        [ -s "$WORK/listen" ] && break
        kill -0 "$NDMPD_PID" 2>/dev/null || { cat "$NDMPD_LOG" >&2; die "ndmpd exited at start"; }
        sleep 0.05
    done
    [ -s "$WORK/listen" ] || die "ndmpd did not start listening"
    NDMPD_PORT="$(head -n1 "$WORK/listen" | sed 's/.*://')"
    ilog "ndmpd pid $NDMPD_PID on 127.0.0.1:$NDMPD_PORT"
}

# stop_ndmpd: SIGTERM, wait up to 20 s, then SIGKILL; returns the exit
# status (137 if it had to be killed).
stop_ndmpd() {
    local pid="$NDMPD_PID" i
    [ -n "$pid" ] || return 0
    NDMPD_PID=""
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 137
    fi
    wait "$pid"
}

# ndmjob writes Amanda debug logs under /var/log/amanda; as root, run it in
# a private mount namespace with that directory bound to the work dir.
AMLOG="$WORK/amlog"
ndmjob_cmd() {
    NJ=()
    if [ "$(id -u)" = 0 ] && [ -d /var/log/amanda ] && unshare -m true 2>/dev/null; then
        mkdir -p "$AMLOG/client"
        chown -R backup:backup "$AMLOG" 2>/dev/null || true
        NJ=(unshare -m sh -c 'mount --bind "$0" /var/log/amanda && exec "$@"' "$AMLOG")
    fi
    NJ+=("$NDMJOB")
}

# run_ndmjob SECONDS OUTFILE args...: ndmjob -v with a time limit, with
# the shim that fixes the DMA's own bugs ($NDMJOB_SHIM, tests/interop/
# ndmjob_shim.c) preloaded when it is given.
run_ndmjob() {
    local t="$1" out="$2"; shift 2
    ndmjob_cmd
    local preload=()
    [ -n "${NDMJOB_SHIM:-}" ] && preload=(env "LD_PRELOAD=$NDMJOB_SHIM")
    timeout -k 5 "$t" "${preload[@]}" "${NJ[@]}" -v "$@" >"$out" 2>&1 </dev/null
}

# The robot's report (ndmjob -o init-elem-status, or -q with -R): element
# at ADDR holds BARCODE / is empty.
holds() {  # holds FILE ADDR BARCODE
    grep -qE "@$2 +[A-Z]+ +Full +(\?access=denied\? )?PVolTag\($3," "$1" ||
        { echo "--- $1:" >&2; cat "$1" >&2; die "element $2 does not hold $3"; }
}
empty() {  # empty FILE ADDR
    grep -qE "@$2 +[A-Z]+ +Empty" "$1" ||
        { echo "--- $1:" >&2; cat "$1" >&2; die "element $2 is not empty"; }
}

# ndmjob's test suites: the FINAL line with no failed or almost-passed step.
suite_passed() {  # suite_passed FILE SUITE
    if ! grep -qE "FINAL $2 Passed -- pass=[0-9]+ warn=0 fail=0" "$1" ||
        grep -qE '^Test .* -- (Failed|Almost)' "$1"; then
        grep -E 'FINAL|Test .* -- (Failed|Almost)|DATA' "$1" >&2
        die "$2 did not pass every step"
    fi
}

# ndmjob exits 0 even when an operation fails: judge by its output.
# op_ok FILE: "Operation complete" and no error lines.
op_ok() {
    grep -q '"Operation complete"' "$1" &&
        ! grep -qE 'had problems|FATAL|Operation ended questionably|^#[A-Z.]+ +"err |ERR-CONN' "$1"
}

expect_in() {  # expect_in FILE TEXT
    grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; die "missing: $2"; }
}
