#!/bin/bash
# Amanda's ndmjob as the DMA against a freshly started ndmpd: the probe
# (-q) lists host, server, connection types, butypes and filesystems with
# TEXT and with MD5 logins; wrong passwords are refused with each method;
# NONE is refused under the shipped configuration; the password the
# embedded default generated works.
#
#   ndmjob_probe_test.sh NDMPD_BINARY SOURCE_DIR
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
[ -x "$NDMJOB" ] || die "$NDMJOB missing (scripts/setup.sh installs amanda-common)"

start_ndmpd "$1" "$2"
A="127.0.0.1:$NDMPD_PORT"

for auth in t m; do
    out="$WORK/probe-$auth.out"
    run_ndmjob 60 "$out" -q -D "$A/4$auth,$DMA_USER,$DMA_PASSWORD"
    op_ok "$out" || { cat "$out" >&2; die "probe with /4$auth had problems"; }
    expect_in "$out" "Data Agent 127.0.0.1 NDMPv4"
    expect_in "$out" "Host info"
    expect_in "$out" "os_type    Linux"
    expect_in "$out" "Server info"
    expect_in "$out" "vendor     ndmpd"
    expect_in "$out" "auths      (2)  NDMP4_AUTH_MD5 NDMP4_AUTH_TEXT"
    expect_in "$out" "addr_types (2)  NDMP4_ADDR_LOCAL NDMP4_ADDR_TCP"
    expect_in "$out" "Backup type info of tar format"
    expect_in "$out" "File system /vol0"
    expect_in "$out" "status     online"
    ilog "probe /4$auth: OK"
done

# The tape agent's view (CONFIG_GET_TAPE_INFO) lists the embedded
# library's drives, and the robot agent's (CONFIG_GET_SCSI_INFO) its changer.
out="$WORK/probe-tape.out"
run_ndmjob 60 "$out" -q -T "$A/4m,$DMA_USER,$DMA_PASSWORD" -R "$A/4m,$DMA_USER,$DMA_PASSWORD"
op_ok "$out" || { cat "$out" >&2; die "tape agent probe had problems"; }
expect_in "$out" "Tape Agent 127.0.0.1 NDMPv4"
expect_in "$out" "tape NDMPD VIRTUAL TAPE"
expect_in "$out" "device     vtl0.drive0"
expect_in "$out" "device     vtl0.drive1"
expect_in "$out" "Robot Agent 127.0.0.1 NDMPv4"
expect_in "$out" "scsi NDMPD VIRTUAL LIBRARY"
expect_in "$out" "device     vtl0.changer"

# Wrong passwords, each method.
out="$WORK/wrong-t.out"
run_ndmjob 60 "$out" -q -D "$A/4t,$DMA_USER,not-the-password"
expect_in "$out" "err connect-auth-text-failed"
! grep -q "Host info" "$out" || die "a wrong TEXT password got host info"
out="$WORK/wrong-m.out"
run_ndmjob 60 "$out" -q -D "$A/4m,$DMA_USER,not-the-password"
expect_in "$out" "err connect-auth-md5-failed"
! grep -q "Host info" "$out" || die "a wrong MD5 password got host info"
out="$WORK/unknown-user.out"
run_ndmjob 60 "$out" -q -D "$A/4m,root,$DMA_PASSWORD"
expect_in "$out" "err connect-auth-md5-failed"
ilog "wrong passwords refused"

# NONE is not allowed by the shipped configuration.
out="$WORK/none.out"
run_ndmjob 60 "$out" -q -D "$A/4n"
expect_in "$out" "err connect-auth-none-failed"
! grep -q "Host info" "$out" || die "NONE got host info"
ilog "NONE refused"

# The embedded default's own login, with the password it generated.
pwfile="$NDMPD_STATE/ndmp.password"
[ "$(stat -c %a "$pwfile")" = 600 ] || die "$pwfile is not mode 600"
grep -q "generated a password for user 'ndmp' in $pwfile" "$NDMPD_LOG" || die "generation not logged"
out="$WORK/ndmp.out"
run_ndmjob 60 "$out" -q -D "$A/4m,ndmp,$(head -n1 "$pwfile")"
op_ok "$out" || { cat "$out" >&2; die "login with the generated password failed"; }
ilog "generated password works"

grep -q "login failed for user 'dma' (text)" "$NDMPD_LOG" || die "failed TEXT login not logged"
grep -q "login failed for user 'dma' (md5)" "$NDMPD_LOG" || die "failed MD5 login not logged"

stop_ndmpd
status=$?
[ "$status" = 0 ] || { cat "$NDMPD_LOG" >&2; die "ndmpd exited with $status on SIGTERM"; }
echo "ndmjob probe: PASS"
