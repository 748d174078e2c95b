// The recovery side of the `tar` butype: reads a POSIX pax image from a
// Source and restores it under a destination directory, or only reads it
// to send its file history.  The image conventions it relies on are the
// backup engine's (tar_backup.h).
//
// What is restored: everything, or the nlist names (a file, or a directory
// with its whole subtree, possibly renamed).  With DIRECT=Y and known
// fh_info, only the ranges of the named entries are requested from the
// Source (one short range for the headers, then exactly what the entry
// still needs); names without fh_info are found by one sequential pass.
// An incremental image's directories carry the "ndmpd.dirents" list: a
// recovery of everything removes from each restored directory the names
// the list lacks, so a level 0 then its level 1 reproduce the level-1 tree.
//
// Safety (nothing is written outside `job.destination`):
//  - the destination is canonicalized once (realpath), so that it has no
//    symlink and no "..";
//  - every entry name (and hard-link target) is checked lexically here:
//    absolute names and names with a ".." component are refused; the name
//    is then rewritten to the absolute destination-based path;
//  - archive_write_disk runs with SECURE_SYMLINKS and SECURE_NODOTDOT:
//    it refuses to create anything through a symlink (one planted earlier
//    by the image, or one already in the destination), for entries and for
//    hard-link targets.  SECURE_NOABSOLUTEPATHS is NOT set: it would refuse
//    the absolute destination-based paths we produce, and its purpose
//    (names escaping through a leading "/") is served by the lexical check
//    above, done on the image's own name before the rewrite.  Writing to
//    absolute paths instead of chdir() into the destination keeps the
//    process's working directory alone (the daemon is multi-threaded).
// A refused or failing entry is logged (warning, naming the entry) and the
// recovery goes on; the nlist name it belongs to reports the error.
//
// Owners are restored by number (no user/group name lookup): the image's
// uid/gid as the backup saw them.  Sparse files keep the holes the image's
// sparse map records (ARCHIVE_EXTRACT_SPARSE, which would also turn zero
// runs of the data into holes, is off: it writes 4 KiB at a time).
// Directories that already existed get their times again at the very end
// (libarchive defers times only for directories it creates).
//
// Thread safety: run_tar_recover is blocking and runs on the engine's own
// thread; it calls `source` and `reporter` from that thread only.  Note
// that libarchive's disk writer briefly sets the process umask (umask(0)
// then back) for each entry, and changes the working directory for paths
// longer than PATH_MAX; nothing else here touches process-wide state.
#pragma once

#include "ndmpd/data/engine.h"

namespace ndmpd::data {

// Runs one recovery (or, with job.filehist_only, one file-history read) to
// the end, a fatal image error, or cancellation.  Never throws.
//  - ok: the image was read without a fatal error (entries that failed are
//    only logged and reported through file_result);
//  - image_bytes: bytes read from the Source; files: entries restored
//    (entries read, with filehist_only).
Result run_tar_recover(const RecoverJob& job, Source& source, Reporter& reporter,
                       const Cancel& cancel);

}  // namespace ndmpd::data
