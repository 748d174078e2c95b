#!/bin/sh
# setup.sh -- install every Debian 12 package that ndmpd's build, its tests
# and its benchmarks need.  Idempotent: runs "apt-get update" and
# "apt-get install" only when something is missing.  Must run as root.
#
#   ./scripts/setup.sh            build + test dependencies
#
# What each group is for:
#   toolchain      cmake ninja-build g++ clang (libFuzzer) clang-format pkg-config
#   libraries      Boost 1.81 (Asio with C++20 coroutines), libtirpc + rpcgen
#                  (XDR), OpenSSL (MD5 auth, challenges), libsgutils2 (SG_IO,
#                  sense names), libiscsi (iSCSI transport), libarchive (tar),
#                  toml++ (config), spdlog (logging), CLI11 (command line),
#                  SQLite (catalogues), GoogleTest/Benchmark (tests, benchmarks)
#   interop peers  amanda-common (ndmjob, the DMA the tests drive), tgt (an
#                  iSCSI target with SSC tape and SMC changer LUNs),
#                  libiscsi-bin, sg3-utils
#   test tools     util-linux (unshare, setsid), procps, iproute2, tar,
#                  coreutils, findutils, attr, acl, time
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (it installs Debian packages)" >&2
    exit 2
fi

PKGS="
cmake ninja-build g++ clang libclang-rt-14-dev clang-format pkg-config
libboost1.81-dev libtirpc-dev rpcsvc-proto libssl-dev libsgutils2-dev
libiscsi-dev libarchive-dev libtomlplusplus-dev libspdlog-dev libcli11-dev
libsqlite3-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
amanda-common tgt libiscsi-bin sg3-utils
util-linux procps iproute2 tar coreutils findutils attr acl time
"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "setup.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing
else
    echo "setup.sh: all packages present"
fi
