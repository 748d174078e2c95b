#!/bin/sh
# run.sh -- set up a fresh Debian 12 machine (as root), build ndmpd and run
# it in the foreground on the embedded default configuration
# (conf/ndmpd.toml: state in /var/lib/ndmpd, NDMP on port 10000).
#
#   ./scripts/run.sh [extra ndmpd options, e.g. --listen 127.0.0.1:10000]
set -eu
top="$(cd "$(dirname "$0")/.." && pwd)"
"$top/scripts/setup.sh"
cmake -S "$top" -B "$top/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNDMPD_BENCH=OFF
cmake --build "$top/build-release" --target ndmpd
exec "$top/build-release/ndmpd/ndmpd" --config "$top/conf/ndmpd.toml" --foreground "$@"
