// `ndmpd xcopy`: the operator's server-free copy.  Copies between two
// devices (disk -> disk, disk -> tape, tape -> disk) through a copy manager
// with SCSI EXTENDED COPY, so that the data never passes through this
// process: the devices are the configuration's (by registry name) or real
// ones (/dev/sg* paths, iscsi:// URLs), the copy manager likewise.
//
// It opens the registry of the daemon's state directory itself, so it
// refuses to run while a daemon holds that directory (the daemon keeps a
// shared lock on STATE_DIR/ndmpd.lock, see lock_state_dir()).
//
// Thread-safety: run_xcopy() is called once, from main(); it installs a
// SIGINT/SIGTERM handler for the duration of the copy (a signal stops the
// copy between two EXTENDED COPY commands).
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "ndmpd/config.h"

namespace ndmpd {

struct XcopyOptions {
  std::string source;       // registry name, /dev/sg* path or iscsi:// URL
  std::string destination;  // the same
  std::string manager;      // the copy manager; empty: the registry's only one
  std::uint64_t source_lba = 0, destination_lba = 0;
  std::uint64_t source_offset = 0, destination_offset = 0;  // bytes past the LBA
  std::optional<std::uint64_t> bytes;                       // how much; or
  std::optional<std::uint64_t> blocks;     // in the disk's blocks (the source's if it is one)
  std::uint32_t record_size = 256u << 10;  // tape records (variable mode); 0: block length
  std::string load;                        // a cartridge to load into the tape (emulated library)
  std::uint64_t batch_mib = 80;            // data per EXTENDED COPY
  std::uint32_t segment_mib = 8;           // data per segment descriptor
  bool poll_status = true;                 // COPY STATUS while each command runs
};

// Runs the copy; progress lines and the report go to `err` / `out`.
// Exit status: 0 copied; 1 the copy failed; 2 bad arguments or devices;
// 3 the state directory is held by a running daemon; 4 the destination
// tape reached its end of medium (the report says where to resume).
int run_xcopy(const Config& config, const XcopyOptions& options, std::ostream& out,
              std::ostream& err);

// Locks STATE_DIR/ndmpd.lock: shared for the daemon (several readers of
// the configuration may coexist), exclusive for `ndmpd xcopy` (which opens
// the emulated devices itself).  Returns the descriptor to keep open, or -1
// with `busy` true if the other side holds it (or `error` otherwise).
int lock_state_dir(const std::filesystem::path& state_dir, bool exclusive, bool& busy,
                   std::string& error);

}  // namespace ndmpd
