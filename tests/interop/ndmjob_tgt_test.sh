#!/bin/bash
# Amanda's ndmjob as the DMA of the tape and robot services, against real
# SCSI targets: tgt's iSCSI tape drive and tape library (a private tgtd on
# 127.0.0.1, tests/support/tgt.sh), configured as `iscsi` devices beside
# the embedded library:
#  - test-tape on tgt's tape LUN (cartridge STAND001 loaded): every step
#    passes.  tgt has no usable READ POSITION and spaces wrongly, so ndmpd
#    positions this drive itself (tape/tape_head.h).
#  - the robot operations on tgt's changer (drives at elements 1 and 2,
#    slots 1024..1029 holding LAB001L6..LAB006L6), each checked against
#    READ ELEMENT STATUS afterwards.  tgt garbles an all-element-types
#    report; ndmpd rebuilds it (tape/changer_quirks.h).
#
#   ndmjob_tgt_test.sh NDMPD_BINARY SOURCE_DIR   (NDMJOB_SHIM: the shim)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
[ -x "$NDMJOB" ] || die "$NDMJOB missing (scripts/setup.sh installs amanda-common)"
[ -n "${NDMJOB_SHIM:-}" ] && [ -f "$NDMJOB_SHIM" ] || die "NDMJOB_SHIM is not the shim"
TGT_SH="$HERE/../support/tgt.sh"

# tgtd, stopped (by the PID tgt.sh recorded) when this script ends; its
# watchdog stops it should this script die first.
TGT_DIR="$WORK/tgt"
stop_tgt() { "$TGT_SH" stop "$TGT_DIR" >/dev/null 2>&1; }
trap 'stop_tgt; cleanup' EXIT
"$TGT_SH" start "$TGT_DIR" $$ >"$WORK/tgt-start.out" 2>&1 ||
    { cat "$WORK/tgt-start.out" >&2; die "tgt did not start"; }
. "$TGT_DIR/tgt.env"

NDMPD_CONFIG="$WORK/ndmpd.toml"
{
    cat "$2/conf/ndmpd.toml"
    printf '\n[devices.tgt_tape]\nkind = "tape"\nurl = "%s"\n' "$TAPE_URL"
    printf '\n[devices.tgt_drive1]\nkind = "tape"\nurl = "%s"\n' "$VTL_DRIVE1_URL"
    printf '\n[devices.tgt_drive2]\nkind = "tape"\nurl = "%s"\n' "$VTL_DRIVE2_URL"
    printf '\n[devices.tgt_changer]\nkind = "changer"\nurl = "%s"\n' "$VTL_CHANGER_URL"
} >"$NDMPD_CONFIG"
start_ndmpd "$1" "$2"
A="127.0.0.1:$NDMPD_PORT/4m,$DMA_USER,$DMA_PASSWORD"

# ---- test-tape on tgt's tape LUN ----
out="$WORK/test-tape.out"
run_ndmjob 600 "$out" -v -o test-tape -T "$A" -f tgt_tape
suite_passed "$out" test-tape
ilog "test-tape on tgt: $(grep -o 'FINAL test-tape Passed -- pass=[0-9]*' "$out")"

# ---- robot operations on tgt's changer ----
ROBOT=(-R "$A" -r tgt_changer)
DRIVE=(-T "$A" -f tgt_drive1)
inv="$WORK/inventory.out"
inventory() {
    run_ndmjob 60 "$inv" -o init-elem-status "${ROBOT[@]}"
    op_ok "$inv" || { cat "$inv" >&2; die "init-elem-status had problems"; }
}
inventory
expect_in "$inv" "slots 6@1024  drive 2@1  arm 1@16  i/e 1@768"
for i in 1 2 3 4 5 6; do holds "$inv" $((1023 + i)) "LAB00${i}L6"; done
holds "$inv" 768 CLN001CU
empty "$inv" 1
empty "$inv" 2

out="$WORK/load.out"
run_ndmjob 60 "$out" -o load=1025 "${ROBOT[@]}"
op_ok "$out" || { cat "$out" >&2; die "load had problems"; }
inventory
holds "$inv" 1 LAB002L6
empty "$inv" 1025

out="$WORK/unload.out"
run_ndmjob 60 "$out" -o unload "${ROBOT[@]}" "${DRIVE[@]}"
op_ok "$out" || { cat "$out" >&2; die "unload had problems"; }
inventory
holds "$inv" 1025 LAB002L6
empty "$inv" 1

out="$WORK/init-labels.out"
run_ndmjob 120 "$out" -o init-labels "${ROBOT[@]}" "${DRIVE[@]}" -m TGA001@1026 -m TGB002@1027
op_ok "$out" || { cat "$out" >&2; die "init-labels had problems"; }
expect_in "$out" "Writing tape label 'TGA001'"
expect_in "$out" "Writing tape label 'TGB002'"

# (list-labels always says "had problems": see ndmjob_tape_test.sh.)
out="$WORK/list.out"
run_ndmjob 120 "$out" -l "${ROBOT[@]}" "${DRIVE[@]}" -m @1026 -m @1027
expect_in "$out" 'ME "TGA001@1026"'
expect_in "$out" 'ME "TGB002@1027"'
! grep -q "failed label read" "$out" || { cat "$out" >&2; die "a label was not read"; }

inventory
holds "$inv" 1026 LAB003L6
holds "$inv" 1027 LAB004L6
empty "$inv" 1
empty "$inv" 2
kill -0 "$TGT_PID" 2>/dev/null || die "tgtd died"

stop_ndmpd || die "ndmpd did not stop cleanly"
ilog "ndmjob tape and robot operations on tgt: OK"
