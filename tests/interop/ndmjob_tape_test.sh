#!/bin/bash
# Amanda's ndmjob as the DMA of the tape and robot services, against the
# embedded library of the shipped configuration (vtl0: changer, drives at
# elements 256 and 257, slots from 1024 holding NDMP001L6...):
#  - test-tape, ndmjob's tape conformance suite, on vtl0.drive0 with the
#    robot loading slot 1024 first: every step passes (0 failed, 0 almost);
#  - the robot operations init-elem-status, load, unload, init-labels and
#    -l (list labels), each checked against READ ELEMENT STATUS afterwards.
#
#   ndmjob_tape_test.sh NDMPD_BINARY SOURCE_DIR   (NDMJOB_SHIM: the shim)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
[ -x "$NDMJOB" ] || die "$NDMJOB missing (scripts/setup.sh installs amanda-common)"
[ -n "${NDMJOB_SHIM:-}" ] && [ -f "$NDMJOB_SHIM" ] || die "NDMJOB_SHIM is not the shim"

start_ndmpd "$1" "$2"
A="127.0.0.1:$NDMPD_PORT/4m,$DMA_USER,$DMA_PASSWORD"
ROBOT=(-R "$A" -r vtl0.changer)
DRIVE=(-T "$A" -f vtl0.drive0)

# ---- test-tape ----
out="$WORK/test-tape.out"
run_ndmjob 300 "$out" -v -o test-tape "${ROBOT[@]}" "${DRIVE[@]}" -m @1024
suite_passed "$out" test-tape
expect_in "$out" "Commanding robot to load slot @1024 into drive @256"
ilog "test-tape: $(grep -o 'FINAL test-tape Passed -- pass=[0-9]*' "$out")"

# ---- robot operations ----
inv="$WORK/inventory.out"
inventory() {
    run_ndmjob 60 "$inv" -o init-elem-status "${ROBOT[@]}"
    op_ok "$inv" || { cat "$inv" >&2; die "init-elem-status had problems"; }
}
inventory
expect_in "$inv" "slots 16@1024  drive 2@256"
holds "$inv" 1024 NDMP001L6     # test-tape unloaded it back
holds "$inv" 1035 NDMP012L6
empty "$inv" 1036
empty "$inv" 256
empty "$inv" 257

out="$WORK/load.out"
run_ndmjob 60 "$out" -o load=1025 "${ROBOT[@]}"
op_ok "$out" || { cat "$out" >&2; die "load had problems"; }
inventory
holds "$inv" 256 NDMP002L6
empty "$inv" 1025

out="$WORK/unload.out"
run_ndmjob 60 "$out" -o unload "${ROBOT[@]}" "${DRIVE[@]}"
op_ok "$out" || { cat "$out" >&2; die "unload had problems"; }
expect_in "$out" "Commanding robot to unload drive @256 to slot @1025"
inventory
holds "$inv" 1025 NDMP002L6
empty "$inv" 256

out="$WORK/init-labels.out"
run_ndmjob 120 "$out" -o init-labels "${ROBOT[@]}" "${DRIVE[@]}" -m LBLA01@1026 -m LBLB02@1027
op_ok "$out" || { cat "$out" >&2; die "init-labels had problems"; }
expect_in "$out" "Writing tape label 'LBLA01'"
expect_in "$out" "Writing tape label 'LBLB02'"

# ndmjob's list-labels returns the label type of the last cartridge as its
# status, so it always says "had problems": judge it by what it lists.
out="$WORK/list.out"
run_ndmjob 120 "$out" -l "${ROBOT[@]}" "${DRIVE[@]}" -m @1026 -m @1027
expect_in "$out" 'ME "LBLA01@1026"'
expect_in "$out" 'ME "LBLB02@1027"'
! grep -q "failed label read" "$out" || { cat "$out" >&2; die "a label was not read"; }

inventory
holds "$inv" 1026 NDMP003L6
holds "$inv" 1027 NDMP004L6
empty "$inv" 256
empty "$inv" 257

stop_ndmpd || die "ndmpd did not stop cleanly"
ilog "ndmjob tape and robot operations: OK"
