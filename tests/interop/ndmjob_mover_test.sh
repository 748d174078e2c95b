#!/bin/bash
# Amanda's ndmjob as the DMA of the mover: test-mover, ndmjob's mover
# conformance suite, against vtl0.drive0 of the embedded library with the
# robot loading slot 1024 first.  ndmpd lists LOCAL and TCP connections, so
# both phases run; every step must pass (0 failed, 0 almost).
#
#   ndmjob_mover_test.sh NDMPD_BINARY SOURCE_DIR   (NDMJOB_SHIM: the shim)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
[ -x "$NDMJOB" ] || die "$NDMJOB missing (scripts/setup.sh installs amanda-common)"
[ -n "${NDMJOB_SHIM:-}" ] && [ -f "$NDMJOB_SHIM" ] || die "NDMJOB_SHIM is not the shim"

start_ndmpd "$1" "$2"
A="127.0.0.1:$NDMPD_PORT/4m,$DMA_USER,$DMA_PASSWORD"

out="$WORK/test-mover.out"
run_ndmjob 300 "$out" -v -o test-mover -R "$A" -r vtl0.changer -T "$A" -f vtl0.drive0 -m @1024
suite_passed "$out" test-mover
# Both kinds of data connection were exercised.
expect_in "$out" "LOCAL"
expect_in "$out" "TCP"
ilog "test-mover: $(grep -o 'FINAL test-mover Passed -- pass=[0-9]*' "$out")"
ilog "ndmjob test-mover passed"
