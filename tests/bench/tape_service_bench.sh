#!/bin/bash
# Runs a benchmark whose peer is ndmjob's server in private network and
# mount namespaces: that server binds 0.0.0.0 and writes Amanda debug logs
# under /var/log/amanda, neither of which may touch the host.  Needs root.
# The benchmark is the one this script is named after (BUILD_DIR/tests/NAME
# for NAME.sh), so a link to it under another name runs that benchmark.
#
#   [BENCH_QUICKACK=1] tests/bench/tape_service_bench.sh BUILD_DIR [benchmark options]
#
# BENCH_QUICKACK=1 turns delayed ACKs off on the namespace's loopback
# routes.  ndmjob's server sends a reply in 4000-byte writes without
# TCP_NODELAY, so Nagle holds the tail of a TAPE_READ reply until the DMA's
# delayed ACK (~40 ms): that is what a DMA sees, and the default; with
# quickack the figures show what the server itself can do.
set -eu
[ $# -ge 1 ] || { sed -n '8p' "$0" >&2; exit 2; }
bench="$1/tests/$(basename "$0" .sh)"; shift
[ -x "$bench" ] || { echo "$bench: not built" >&2; exit 2; }
scratch="$(mktemp -d /tmp/ndmpd-bench-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
# ndmjob creates its log directory as the Amanda user, backup.
mkdir -p "$scratch/amlog/client"
chown -R backup:backup "$scratch/amlog" 2>/dev/null || true
BENCH_QUICKACK="${BENCH_QUICKACK:-0}" unshare --mount --net sh -c '
  ip link set lo up
  if [ "$BENCH_QUICKACK" = 1 ]; then
    for dst in 127.0.0.1 127.0.0.0/8; do
      ip route change local $dst dev lo table local proto kernel scope host src 127.0.0.1 quickack 1
    done
    echo "(loopback routes with quickack 1: delayed ACKs off)"
  fi
  if [ -d /var/log/amanda ]; then mount --bind "$0" /var/log/amanda; fi
  exec "$@"' "$scratch/amlog" "$bench" "$@"
