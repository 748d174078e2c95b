#include "ndmpd/xcopy_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "scsi/copy_client.h"
#include "scsi/emu/logical_unit.h"
#include "scsi/sense.h"
#include "tape/media_changer.h"
#include "tape/registry.h"

namespace ndmpd {

namespace {

namespace xc = scsi::xcopy;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) { g_stop.store(true); }

bool is_address(const std::string& s) {
  return s.rfind("/dev/", 0) == 0 || s.rfind("iscsi://", 0) == 0;
}

std::string mib(std::uint64_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1024.0 * 1024.0)
     << " MiB";
  return os.str();
}

std::string sense_line(std::span<const std::uint8_t> bytes) {
  scsi::Result r;
  r.status = scsi::Status::kCheckCondition;
  r.sense.assign(bytes.begin(), bytes.end());
  return scsi::describe_result(r);
}

// A device taking part: from the registry (by name) or opened by address.
struct Named {
  std::string name;
  std::shared_ptr<scsi::Device> device;
  const tape::DeviceRegistry::Entry* entry = nullptr;
};

bool find_device(const tape::DeviceRegistry* registry, const std::string& what, Named& out,
                 std::string& error) {
  out.name = what;
  if (is_address(what)) {
    std::unique_ptr<scsi::Device> d = tape::open_device(what, error);
    if (!d) return false;
    out.device = std::move(d);
    return true;
  }
  if (registry) out.entry = registry->find(what);
  if (!out.entry) {
    error = "'" + what + "' is neither a device of the configuration nor a /dev/ path or an " +
            "iscsi:// URL";
    return false;
  }
  out.device = out.entry->device;
  return true;
}

// Puts `barcode` into the drive `drive_name` of an emulated library
// (nothing to do when it is already there).
bool load_cartridge(const tape::DeviceRegistry& registry, const std::string& drive_name,
                    const std::string& barcode, std::ostream& err, std::string& error) {
  for (const auto& lib : registry.libraries()) {
    for (std::size_t i = 0; i < lib->drives().size(); ++i) {
      if (lib->drive_name(i) != drive_name) continue;
      const auto& drive = lib->drives()[i];
      if (drive->has_cartridge()) {
        if (drive->barcode() == barcode) return true;
        error = drive_name + " holds cartridge " + drive->barcode() + ", not " + barcode;
        return false;
      }
      const auto* changer = registry.find(lib->changer_name());
      if (!changer) break;
      tape::MediaChanger mc(changer->device);
      const tape::Inventory inv = mc.inventory();
      if (!inv.status.ok()) {
        error = lib->changer_name() + ": " + inv.status.describe();
        return false;
      }
      for (const tape::ChangerElement& e : inv.elements) {
        if (!e.full || e.barcode != barcode || e.type == tape::ChangerElement::kDataTransfer) {
          continue;
        }
        const auto to = static_cast<std::uint16_t>(scsi::emu::VirtualLibrary::kFirstDrive + i);
        const tape::Status s = mc.move(e.address, to);
        if (!s.ok()) {
          error = "moving " + barcode + " into " + drive_name + ": " + s.describe();
          return false;
        }
        err << "xcopy: loaded " << barcode << " into " << drive_name << "\n";
        return true;
      }
      error = "cartridge " + barcode + " is not in a slot of " + lib->name();
      return false;
    }
  }
  error = "--load needs a tape drive of an emulated library; " + drive_name + " is not one";
  return false;
}

// A second path to the copy manager for COPY STATUS while a copy runs: the
// emulated unit answers on the same object; a real one gets its own
// session (an sg file descriptor, an iSCSI login).
std::shared_ptr<scsi::Device> status_path(const Named& manager) {
  if (manager.entry && manager.entry->emulated) return manager.device;
  std::string ignored;
  const std::string address = manager.entry ? manager.device->describe() : manager.name;
  if (!is_address(address)) return nullptr;
  std::unique_ptr<scsi::Device> d = tape::open_device(address, ignored);
  return d ? std::shared_ptr<scsi::Device>(std::move(d)) : nullptr;
}

}  // namespace

int lock_state_dir(const std::filesystem::path& state_dir, bool exclusive, bool& busy,
                   std::string& error) {
  busy = false;
  const std::filesystem::path path = state_dir / "ndmpd.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = path.string() + ": " + std::strerror(errno);
    return -1;
  }
  if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    busy = errno == EWOULDBLOCK;
    error = path.string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int run_xcopy(const Config& config, const XcopyOptions& options, std::ostream& out,
              std::ostream& err) {
  if (options.source.empty() || options.destination.empty()) {
    err << "ndmpd xcopy: give a SOURCE and a DESTINATION\n";
    return 2;
  }
  if (options.bytes && options.blocks) {
    err << "ndmpd xcopy: give --bytes or --blocks, not both\n";
    return 2;
  }
  const bool need_registry = !is_address(options.source) || !is_address(options.destination) ||
                             !is_address(options.manager);
  int lock_fd = -1;
  std::unique_ptr<tape::DeviceRegistry> registry;
  if (need_registry) {
    bool busy = false;
    std::string error;
    lock_fd = lock_state_dir(config.state_dir, true, busy, error);
    if (lock_fd < 0) {
      if (busy) {
        err << "ndmpd xcopy: a running ndmpd holds the state directory "
            << config.state_dir.string()
            << " and its devices (cartridge files are locked while loaded); stop the daemon "
               "first, or name real devices by /dev/ path or iscsi:// URL\n";
        return 3;
      }
      err << "ndmpd xcopy: " << error << "\n";
      return 2;
    }
    registry = tape::DeviceRegistry::open(config.devices, error);
    if (!registry) {
      ::close(lock_fd);
      if (error.find("in use") != std::string::npos) {
        err << "ndmpd xcopy: " << error << "\nndmpd xcopy: another process (a running ndmpd?) "
            << "holds the devices of " << config.state_dir.string() << "\n";
        return 3;
      }
      err << "ndmpd xcopy: devices: " << error << "\n";
      return 2;
    }
  }
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);
    }
  } unlock{lock_fd};

  std::string error;
  Named source, destination, manager;
  if (!find_device(registry.get(), options.source, source, error) ||
      !find_device(registry.get(), options.destination, destination, error)) {
    err << "ndmpd xcopy: " << error << "\n";
    return 2;
  }
  if (options.manager.empty()) {
    const auto managers = registry ? registry->of(tape::DeviceKind::kCopyManager)
                                   : std::vector<const tape::DeviceRegistry::Entry*>{};
    if (managers.size() != 1) {
      err << "ndmpd xcopy: "
          << (managers.empty() ? "no copy manager is configured"
                               : "several copy managers are configured")
          << "; name one with --manager\n";
      return 2;
    }
    manager.name = managers.front()->name;
    manager.entry = managers.front();
    manager.device = manager.entry->device;
  } else if (!find_device(registry.get(), options.manager, manager, error)) {
    err << "ndmpd xcopy: " << error << "\n";
    return 2;
  }

  if (!options.load.empty()) {
    const Named& tape = destination.entry && destination.entry->kind == tape::DeviceKind::kTape
                            ? destination
                            : source;
    if (!registry || !load_cartridge(*registry, tape.name, options.load, err, error)) {
      err << "ndmpd xcopy: " << (registry ? error : "--load needs a configured library") << "\n";
      return 2;
    }
  }

  const auto src = xc::describe_endpoint(source.device, error);
  if (!src) {
    err << "ndmpd xcopy: source: " << error << "\n";
    return 2;
  }
  const auto dst = xc::describe_endpoint(destination.device, error);
  if (!dst) {
    err << "ndmpd xcopy: destination: " << error << "\n";
    return 2;
  }

  // Where each disk's range starts, checked: the operator's LBA and offset
  // must lie on the disk, and must not wrap around to a low LBA.
  std::uint64_t src_start = 0, dst_start = 0;
  for (const bool is_source : {true, false}) {
    const xc::Endpoint& e = is_source ? *src : *dst;
    if (e.tape) continue;
    const auto start =
        xc::disk_start(e, is_source ? options.source_lba : options.destination_lba,
                       is_source ? options.source_offset : options.destination_offset, error);
    if (!start) {
      err << "ndmpd xcopy: " << (is_source ? "source" : "destination") << ": " << error << "\n";
      return 2;
    }
    (is_source ? src_start : dst_start) = *start;
  }

  xc::CopyJob job;
  job.source = *src;
  job.destination = *dst;
  job.source_lba = options.source_lba;
  job.destination_lba = options.destination_lba;
  job.source_byte_offset = options.source_offset;
  job.destination_byte_offset = options.destination_offset;
  job.record_size = options.record_size;
  if (options.bytes) {
    job.bytes = *options.bytes;
  } else if (options.blocks) {
    const xc::Endpoint& disk = !src->tape ? *src : *dst;
    if (disk.tape) {
      err << "ndmpd xcopy: --blocks counts a disk's blocks; between tapes give --bytes\n";
      return 2;
    }
    if (__builtin_mul_overflow(*options.blocks, std::uint64_t{disk.block_length}, &job.bytes)) {
      err << "ndmpd xcopy: --blocks " << *options.blocks << " of " << disk.block_length
          << " bytes is more than any disk holds\n";
      return 2;
    }
  } else if (!src->tape) {
    // disk_start() placed both starts before their disk's end.
    job.bytes = xc::disk_capacity(*src).value_or(0) - src_start;
    if (!dst->tape)
      job.bytes = std::min(job.bytes, xc::disk_capacity(*dst).value_or(0) - dst_start);
  } else {
    err << "ndmpd xcopy: from a tape, give the length with --bytes (or --blocks)\n";
    return 2;
  }
  if (job.bytes == 0) {
    err << "ndmpd xcopy: nothing to copy (a length of 0 bytes); give --bytes or --blocks\n";
    return 2;
  }
  for (const bool is_source : {true, false}) {
    const xc::Endpoint& e = is_source ? *src : *dst;
    if (e.tape) continue;
    const std::uint64_t start = is_source ? src_start : dst_start;
    const std::uint64_t capacity = xc::disk_capacity(e).value_or(0);
    std::uint64_t end = 0;
    if (__builtin_add_overflow(start, job.bytes, &end) || end > capacity) {
      err << "ndmpd xcopy: " << (is_source ? "source" : "destination") << ": " << job.bytes
          << " bytes from byte " << start << " run past the disk's end (" << capacity
          << " bytes)\n";
      return 2;
    }
  }
  if (dst->tape && dst->descriptor.fixed && options.record_size % dst->block_length != 0) {
    job.record_size = 0;  // the drive's own block length
  }
  if (src->tape && src->descriptor.fixed && options.record_size % src->block_length != 0) {
    job.record_size = 0;
  }

  xc::ClientSettings settings;
  settings.batch_bytes = options.batch_mib << 20;
  settings.segment_bytes = options.segment_mib << 20;
  xc::CopyClient client(manager.device, options.poll_status ? status_path(manager) : nullptr,
                        settings);
  if (!client.open(error)) {
    err << "ndmpd xcopy: copy manager: " << error << "\n";
    return 2;
  }

  err << "xcopy: " << source.name << " -> " << destination.name << " through " << manager.name
      << ": " << job.bytes << " bytes (" << mib(job.bytes) << ")"
      << (client.status_offered() ? "" : "; the copy manager reports no progress") << "\n";

  g_stop.store(false);
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  const auto started = Clock::now();
  auto last_line = started;
  auto progress = [&](const xc::CopyProgress& p) {
    const auto now = Clock::now();
    if (now - last_line < std::chrono::seconds(1) && p.bytes_copied != p.bytes_total) return;
    last_line = now;
    const double secs = std::chrono::duration<double>(now - started).count();
    const double pct = p.bytes_total ? 100.0 * static_cast<double>(p.bytes_copied) /
                                           static_cast<double>(p.bytes_total)
                                     : 100.0;
    err << "xcopy: " << mib(p.bytes_copied) << " of " << mib(p.bytes_total) << " (" << std::fixed
        << std::setprecision(0) << pct << "%), " << std::setprecision(1)
        << (secs > 0 ? static_cast<double>(p.bytes_copied) / secs / (1024.0 * 1024.0) : 0.0)
        << " MiB/s\n";
  };
  const xc::CopyOutcome outcome = client.run(job, progress, &g_stop);
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);

  out << "source:       " << source.name << " (" << source.device->describe() << ")\n"
      << "destination:  " << destination.name << " (" << destination.device->describe() << ")\n"
      << "copy manager: " << manager.name << " (" << manager.device->describe() << ")\n"
      << "copied:       " << outcome.bytes_copied << " of " << job.bytes << " bytes ("
      << mib(outcome.bytes_copied) << ") in " << std::fixed << std::setprecision(2) << secs
      << " s, " << std::setprecision(1)
      << (secs > 0 ? static_cast<double>(outcome.bytes_copied) / secs / (1024.0 * 1024.0) : 0.0)
      << " MiB/s\n"
      << "commands:     " << outcome.commands << " EXTENDED COPY, " << outcome.segments
      << " segments\n";
  if (outcome.ok) {
    out << "outcome:      OK";
    if (outcome.end_of_medium) {
      out << "; the destination cartridge is past its early warning: it holds the whole copy, "
             "but write nothing more to it";
    }
    out << "\n";
    return 0;
  }
  out << "outcome:      FAILED: " << outcome.error << "\n";
  if (outcome.abort) {
    const xc::CopyAbort& a = *outcome.abort;
    out << "copy manager: sense " << std::hex << std::uppercase << std::setfill('0') << std::setw(2)
        << static_cast<unsigned>(a.key) << " " << std::setw(2) << static_cast<unsigned>(a.asc)
        << "/" << std::setw(2) << static_cast<unsigned>(a.ascq) << std::dec << std::setfill(' ')
        << ", failing segment " << a.segment << " of EXTENDED COPY command " << outcome.commands;
    if (a.residual) out << ", residual " << *a.residual;
    out << "\n";
    if (a.source) out << "source sense: " << sense_line(a.source->sense) << "\n";
    if (a.destination) out << "destination sense: " << sense_line(a.destination->sense) << "\n";
  }
  if (outcome.end_of_medium && !outcome.confirmed) {
    out << "end of medium: the destination tape is full, but how much it holds is not confirmed "
           "by its position; copy again from the start onto a fresh cartridge\n";
    return 1;
  }
  if (outcome.end_of_medium) {
    // The plan kept src_start + job.bytes within the disk, so no overflow.
    const std::uint64_t resume = src_start + outcome.bytes_copied;
    out << "end of medium: the destination tape is full; load another cartridge and continue "
           "with --source-lba 0 --source-offset "
        << resume << " --bytes " << (job.bytes - outcome.bytes_copied) << "\n";
    return 4;
  }
  return 1;
}

}  // namespace ndmpd
