#!/bin/bash
# make_rich_tree.sh DIR -- build a deterministic directory tree that holds
# every kind of thing a tar backup must carry: regular files of varied
# content (empty, text, every byte value, a few MiB), a hard link with its
# two names in different directories, a relative and a dangling symlink, a
# sparse file (8 MiB, two 64 KiB data extents), a FIFO, a 255-byte name, a
# path over 1024 bytes, UTF-8 names, user.* xattrs (on a file and on a
# directory), setuid and setgid files, a sticky directory, empty
# directories, a file owned by 1234:5678, an mtime in the past.
#
# DIR must not exist or be empty.  Run as root (ownership, setuid).  Every
# mtime is fixed, so two runs give equal manifests (tree_manifest in
# data_lib.sh); DIR itself gets mode 0755 and the fixed mtime too.
set -u
die() { echo "make_rich_tree: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: make_rich_tree.sh DIR"
[ "$(id -u)" = 0 ] || die "must run as root (chown, setuid)"
command -v setfattr >/dev/null || die "setfattr missing (package attr)"
D="$1"
mkdir -p -- "$D" || die "cannot create $D"
[ -z "$(ls -A -- "$D")" ] || die "$D is not empty"
cd -- "$D" || die "cannot enter $D"
umask 022
set -e

# --- regular files, varied content
mkdir files other
printf 'hello, world\n' >files/small.txt
: >files/empty
seq 1 20000 >files/numbers.txt                      # 108 KiB of text
printf "$(printf '\\%03o' $(seq 0 255))" >files/allbytes.bin   # every byte value once
cp files/allbytes.bin files/big.bin                 # doubled to 4 MiB, then cut
for _ in $(seq 1 14); do cat files/big.bin files/big.bin >files/big.tmp; mv files/big.tmp files/big.bin; done
seq 1 40000 | sha256sum >>files/big.bin             # a non-periodic tail
truncate -s $((4 * 1024 * 1024 + 777)) files/big.bin   # not a multiple of any record size
printf 'no newline at the end' >files/nonl.txt
printf 'tab\there\nand a\rcarriage return\n' >"files/space name.txt"

# --- hard link: two names, one in another directory
printf 'one inode, two names\n' >files/hardlink_a
ln files/hardlink_a other/hardlink_b

# --- symlinks: relative, dangling, absolute (its target is a string only)
mkdir links
ln -s ../files/small.txt links/relative
ln -s ../does/not/exist links/dangling
ln -s /nonexistent/absolute/target links/absolute
ln -s ../files links/to_dir

# --- sparse: 8 MiB, data at 1 MiB and at 6 MiB, a hole at the end
mkdir sparse
truncate -s 8M sparse/holes.img
printf 'extent-one %.0s' $(seq 1 5958) | head -c 65536 | dd of=sparse/holes.img bs=64K seek=16 conv=notrunc status=none
printf 'extent-two %.0s' $(seq 1 5958) | head -c 65536 | dd of=sparse/holes.img bs=64K seek=96 conv=notrunc status=none

# --- special files
mkdir special
mkfifo special/fifo
chmod 0640 special/fifo

# --- a 255-byte name (the longest a Linux filesystem allows)
mkdir names
long="n255-$(printf 'abcdefghij%.0s' $(seq 1 25))"
long="${long:0:255}"
printf 'my name is 255 bytes long\n' >"names/$long"
[ "${#long}" -eq 255 ]

# --- a path over 1024 bytes: 11 nested directories of 100-byte names
p=deep
for i in $(seq -w 1 11); do
    comp="level$i-$(printf 'x%.0s' $(seq 1 93))"
    p="$p/$comp"
done
mkdir -p "$p"
printf 'at the bottom\n' >"$p/leaf.txt"
[ "${#p}" -gt 1024 ]

# --- UTF-8 names
mkdir "Grüße"
printf 'Grüße aus der Tiefe\n' >"Grüße/日本語.txt"
mkdir "日本語"
printf 'こんにちは\n' >"日本語/ファイル"
printf 'emoji\n' >"names/smile-☺-é"

# --- xattrs (user namespace): text, binary, on a directory
printf 'xattr carrier\n' >files/xattr.txt
setfattr -n user.comment -v "a comment" files/xattr.txt
setfattr -n user.binary -v 0x00ff10e2 files/xattr.txt
setfattr -n user.empty files/xattr.txt
setfattr -n user.dirattr -v "on a directory" other

# --- special mode bits
printf '#!/bin/sh\necho setuid\n' >files/setuid.sh
chmod 4755 files/setuid.sh
printf 'setgid\n' >files/setgid.bin
chmod 2711 files/setgid.bin
printf 'private\n' >files/private
chmod 0600 files/private
printf 'odd\n' >files/odd-mode
chmod 0461 files/odd-mode
mkdir sticky
chmod 1777 sticky
printf 'in the sticky dir\n' >sticky/member
mkdir setgid_dir
chmod 2775 setgid_dir

# --- empty directories
mkdir -p empty/nested_empty
mkdir empty_too
chmod 0700 empty_too

# --- ownership
printf 'owned by 1234:5678\n' >files/owned.txt
chown 1234:5678 files/owned.txt
mkdir owned_dir
chown 1234:5678 owned_dir
ln -s owned.txt files/owned_link
chown -h 1234:5678 files/owned_link

# --- fixed mtimes: everything at one date (children before their
# directories), one file far in the past, the root last
find . -mindepth 1 -depth -exec touch -h -d '2021-06-15 12:34:56 UTC' {} +
touch -d '1999-12-31 23:59:58 UTC' files/numbers.txt
touch -h -d '2001-02-03 04:05:06 UTC' links/relative
touch -d '2001-02-03 04:05:06 UTC' "Grüße/日本語.txt"
# files/ was not modified by the touches above (touch changes no directory)
chmod 0755 .
touch -d '2021-06-15 12:34:56 UTC' .
