// The backup side of the `tar` butype: walks a directory tree and writes
// it as a POSIX pax image (libarchive) into a Sink, with file history, for
// full backups (LEVEL 0) and incrementals (LEVEL N, BASE_DATE; state in
// incremental.h).
//
// The image follows the conventions the recovery engine relies on: pax,
// unblocked, entries named relative to the root ("." first, then "dir",
// "dir/file" depth-first pre-order, names sorted within a directory),
// fh_info = the image offset of an entry's first header byte, and in an
// incremental every directory carries the "ndmpd.dirents" xattr (its
// entry names, each followed by NUL, sorted).
//
// The walk stays on the root's filesystem (a mount point is written as a
// directory, its contents are not), never follows symlinks, and reaches
// every entry through directory file descriptors, so neither depth nor
// path length is bounded by PATH_MAX (one descriptor is held per level of
// depth).  Sockets are skipped with a warning.  Files that cannot be read
// are skipped with a warning; files that change while read are kept and
// reported.
//
// Thread safety: run_tar_backup is blocking and runs on the engine's own
// thread (engine.h); concurrent runs are independent (their dump dates
// are committed under a lock).
#pragma once

#include "ndmpd/data/engine.h"

namespace ndmpd::data {

// Backs up job.root into `sink`.  Result::ok only when the whole tree was
// walked, the image ended with its end-of-archive blocks and (UPDATE=Y)
// the dump dates were recorded; Result::env is what DATA_GET_ENV returns
// (the DMA's variables with the values used, plus TYPE, FILESYSTEM, LEVEL,
// HIST, UPDATE, DUMP_DATE, BASE_DATE if given, RECORD_SIZE if known).
Result run_tar_backup(const BackupJob& job, Sink& sink, Reporter& reporter, const Cancel& cancel);

}  // namespace ndmpd::data
