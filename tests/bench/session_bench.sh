#!/bin/bash
# Runs session_bench in a private network and mount namespace: ndmjob's
# server (the peer) binds 0.0.0.0 and writes Amanda debug logs under
# /var/log/amanda, neither of which may touch the host.  Needs root.
#
#   tests/bench/session_bench.sh BUILD_DIR [session_bench options]
set -eu
build="$1"; shift
work="$(mktemp -d /tmp/ndmpd-bench-XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/amlog/client"
chown -R backup:backup "$work/amlog" 2>/dev/null || true
unshare -m -n sh -c '
  ip link set lo up
  [ -d /var/log/amanda ] && mount --bind "$0" /var/log/amanda
  exec "$@"' "$work/amlog" "$build/tests/session_bench" "$@"
