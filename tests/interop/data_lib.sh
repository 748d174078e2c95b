# shellcheck shell=bash
# data_lib.sh -- helpers for the data-server interoperability tests (backup,
# table of contents and restore of a tar image with Amanda's ndmjob as the
# DMA).  Source it after lib.sh; do not run it.
#
#   tree_manifest [--no-root] DIR   one sorted line per entry of DIR
#   index_entries IDXFILE            file-history lines of an ndmjob index
#   index_paths IDXFILE              the paths those lines name, sorted
#   elapsed T0                       seconds since T0 (a `date +%s.%N`)
#   start_second_ndmpd BIN SRC ...   a second ndmpd beside lib.sh's (NDMPD2_*)
#   stop_second_ndmpd

# tree_manifest [--no-root] DIR
# Prints one line per entry below DIR (and DIR itself as ".", unless
# --no-root), sorted bytewise, fields separated by tabs:
#   path type mode uid:gid mtime size sha256 target hardlink sparse xattrs
#   path      relative to DIR ("." = DIR itself)
#   type      find's %y: f d l p c b s
#   mode      octal with the setuid/setgid/sticky bits (find %#m)
#   mtime     seconds since the epoch (symlinks' own mtime too)
#   size      regular files and symlinks only (a directory's size is the
#             filesystem's business), else "-"
#   sha256    regular files, else "-"
#   target    symlinks' target, else "-"
#   hardlink  for a non-directory with more than one name: "hl=" and the
#             smallest of its names inside DIR (so a lost or extra link
#             shows), else "-"
#   sparse    regular files: "sparse" when blocks*512 < size, else "dense"
#   xattrs    user.* attributes, "name=0xHEX" joined by ";", else "-"
# Two trees are identical (for everything a tar backup must keep) iff
# their manifests are equal.  Nothing is read through a FIFO or a device.
tree_manifest() {
    local skip_root=0
    if [ "${1:-}" = --no-root ]; then skip_root=1; shift; fi
    local dir="$1"
    [ -d "$dir" ] || { echo "tree_manifest: $dir is not a directory" >&2; return 2; }
    (
        cd -- "$dir" || exit 2
        export LC_ALL=C
        {
            find . -printf 'E\t%y\t%#m\t%U:%G\t%Ts\t%s\t%n\t%i\t%b\t%l\t%P\n'
            find . -type f -print0 | xargs -0 -r sha256sum | sed 's/^/H\t/'
            getfattr -R -P -h -d -m '^user\.' -e hex . 2>/dev/null | sed 's/^/X\t/'
        } | awk -F'\t' -v skip_root="$skip_root" '
            function unesc(s,   out, i, c) {   # getfattr octal escapes \ooo
                out = ""
                while ((i = index(s, "\\")) > 0) {
                    out = out substr(s, 1, i - 1)
                    c = substr(s, i + 1, 3)
                    if (c ~ /^[0-7][0-7][0-7]$/) {
                        out = out sprintf("%c", (substr(c,1,1) * 64) + (substr(c,2,1) * 8) + substr(c,3,1))
                        s = substr(s, i + 4)
                    } else {
                        out = out substr(s, i + 1, 1)
                        s = substr(s, i + 2)
                    }
                }
                return out s
            }
            $1 == "E" {
                p = $11; if (p == "") p = "."
                n++; path[n] = p; type[p] = $2; mode[p] = $3; own[p] = $4; mt[p] = $5
                size[p] = $6; nl[p] = $7; ino[p] = $8; blk[p] = $9; tgt[p] = $10
                if ($2 != "d" && $7 > 1) {
                    if (!($8 in grp) || p < grp[$8]) grp[$8] = p
                }
                next
            }
            $1 == "H" {
                line = substr($0, 3); h = substr(line, 1, 64); q = substr(line, 67)
                if (substr(line, 1, 1) == "\\") { h = substr(line, 2, 64); q = substr(line, 68) }
                sub(/^\.\//, "", q); if (q == "") q = "."
                sha[q] = h
                next
            }
            $1 == "X" {
                line = substr($0, 3)
                if (line ~ /^# file: /) {
                    cur = unesc(substr(line, 9)); sub(/^\.\//, "", cur); if (cur == "") cur = "."
                } else if (line != "") {
                    old = (cur in xa) ? xa[cur] ";" : ""
                    xa[cur] = old line
                }
                next
            }
            END {
                for (i = 1; i <= n; i++) {
                    p = path[i]
                    if (skip_root && p == ".") continue
                    t = type[p]
                    sz = (t == "f" || t == "l") ? size[p] : "-"
                    hs = (t == "f") ? sha[p] : "-"
                    tg = (t == "l") ? tgt[p] : "-"
                    hl = (t != "d" && nl[p] > 1) ? "hl=" grp[ino[p]] : "-"
                    sp = "-"
                    if (t == "f") sp = (blk[p] * 512 < size[p]) ? "sparse" : "dense"
                    x = (p in xa) ? xa[p] : "-"
                    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p, t, mode[p], own[p], mt[p], sz, hs, tg, hl, sp, x
                }
            }' | sort
    )
}

# ndmjob's index (-I FILE): file history lines DHf (path-based), DHd/DHn
# (directory entries and nodes), DHr (the root node).
index_entries() { grep -cE '^DH[fdn] ' "$1" 2>/dev/null || true; }
# The distinct paths a DHf index names (ndmjob's %XX encoding left as is),
# sorted.  (ndmjob cuts index names to 1023 bytes, so long ones may repeat.)
index_paths() { grep -E '^DHf ' "$1" | awk '{print $2}' | LC_ALL=C sort -u; }

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# start_second_ndmpd NDMPD_BINARY SOURCE_DIR [args...]: a second daemon
# beside the one lib.sh's start_ndmpd runs, with its own state directory
# (its own virtual library), log and port: NDMPD2_PID, NDMPD2_PORT,
# NDMPD2_STATE, NDMPD2_LOG.  Same login (DMA_USER / DMA_PASSWORD).
NDMPD2_PID=""
start_second_ndmpd() {
    local saved_work="$WORK" saved_pid="$NDMPD_PID" saved_port="${NDMPD_PORT:-}"
    local saved_state="${NDMPD_STATE:-}" saved_log="${NDMPD_LOG:-}"
    mkdir -p "$saved_work/second"
    WORK="$saved_work/second"
    NDMPD_PID=""
    start_ndmpd "$@"
    NDMPD2_PID="$NDMPD_PID"; NDMPD2_PORT="$NDMPD_PORT"
    NDMPD2_STATE="$NDMPD_STATE"; NDMPD2_LOG="$NDMPD_LOG"
    WORK="$saved_work"; NDMPD_PID="$saved_pid"; NDMPD_PORT="$saved_port"
    NDMPD_STATE="$saved_state"; NDMPD_LOG="$saved_log"
}
stop_second_ndmpd() {
    [ -n "$NDMPD2_PID" ] || return 0
    local saved_pid="$NDMPD_PID" rc
    NDMPD_PID="$NDMPD2_PID"; NDMPD2_PID=""
    stop_ndmpd; rc=$?
    NDMPD_PID="$saved_pid"
    return $rc
}
