#!/bin/sh
# test.sh -- set up a fresh Debian 12 machine (as root), build ndmpd and its
# tests, and run the whole suite: unit tests, the daemon over TCP, the
# interoperability tests (Amanda's ndmjob as the DMA) and the replay of the
# fuzz corpus.
#
#   ./scripts/test.sh              normal build (build/)
#   ./scripts/test.sh --sanitize   the same suite built with ASan + UBSan (build-asan/)
#   ./scripts/test.sh --fuzz [S]   libFuzzer build (clang, build-fuzz/): for the wire
#                                  decoder, the tar image reader, the SCSI codecs, the
#                                  EXTENDED COPY decoders and the cartridge's recovery,
#                                  replay the corpus, then fuzz for S seconds each
#                                  (default 60)
set -eu
top="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-normal}"
"$top/scripts/setup.sh"
jobs="$(nproc)"

case "$mode" in
normal)
    cmake -S "$top" -B "$top/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$top/build"
    cd "$top/build" && ctest --output-on-failure -j "$jobs" --timeout 600
    ;;
--sanitize)
    cmake -S "$top" -B "$top/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
        -DNDMPD_SANITIZE=ON -DNDMPD_BENCH=OFF
    cmake --build "$top/build-asan"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    cd "$top/build-asan" && ctest --output-on-failure -j "$jobs" --timeout 900
    ;;
--fuzz)
    seconds="${2:-60}"
    CC=clang CXX=clang++ cmake -S "$top" -B "$top/build-fuzz" -G Ninja \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNDMPD_FUZZ=ON -DNDMPD_BENCH=OFF
    cmake --build "$top/build-fuzz" --target fuzz_wire fuzz_image fuzz_scsi fuzz_xcopy fuzz_cartridge
    corpus="$(mktemp -d /tmp/ndmpd-fuzz-XXXXXX)"
    trap 'rm -rf "$corpus"' EXIT
    # Each decoder: its committed corpus replayed, then S seconds of
    # fuzzing from a copy (libFuzzer adds what it finds to its directory).
    for target in wire image scsi xcopy cartridge; do
        mkdir -p "$corpus/$target"
        cp "$top"/tests/fuzz/corpus/$target/* "$corpus/$target"/
        "$top/build-fuzz/tests/fuzz_$target" -runs=0 "$top/tests/fuzz/corpus/$target"
        "$top/build-fuzz/tests/fuzz_$target" -max_total_time="$seconds" -rss_limit_mb=2048 \
            -print_final_stats=1 "$corpus/$target"
    done
    ;;
*)
    echo "usage: $0 [--sanitize | --fuzz [SECONDS]]" >&2
    exit 2
    ;;
esac
