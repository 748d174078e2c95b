#include "scsi/emu/ssc_drive.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace scsi::emu {

namespace {

enum Opcode : std::uint8_t {
  kRewind = 0x01,
  kReadBlockLimits = 0x05,
  kRead6 = 0x08,
  kWrite6 = 0x0A,
  kWriteFilemarks6 = 0x10,
  kSpace6 = 0x11,
  kModeSelect6 = 0x15,
  kErase6 = 0x19,
  kModeSense6 = 0x1A,
  kLoadUnload = 0x1B,
  kPreventAllow = 0x1E,
  kLocate10 = 0x2B,
  kReadPosition = 0x34,
  kLogSense = 0x4D,
  kModeSelect10 = 0x55,
  kModeSense10 = 0x5A,
  kSpace16 = 0x91,
  kLocate16 = 0x92,
};

// Sign-extends the low `bits` bits of `v`.
std::int64_t sign_extend(std::uint64_t v, int bits) {
  const std::uint64_t m = std::uint64_t{1} << (bits - 1);
  v &= (m << 1) - 1;
  return static_cast<std::int64_t>((v ^ m) - m);
}

// CHECK CONDITION with NO SENSE and the stream bits (filemark, EOM, ILI).
Result stream_condition(SenseKey key, std::uint8_t asc, std::uint8_t ascq, std::int64_t info,
                        bool filemark, bool eom, bool ili) {
  return check_condition({.key = key,
                          .asc = asc,
                          .ascq = ascq,
                          .filemark = filemark,
                          .eom = eom,
                          .ili = ili,
                          .information = info});
}

Result blank_check(std::int64_t info) {
  return stream_condition(SenseKey::kBlankCheck, 0x00, 0x05, info, false, false, false);
}
Result filemark_detected(std::int64_t info) {
  return stream_condition(SenseKey::kNoSense, 0x00, 0x01, info, true, false, false);
}
Result beginning_of_partition(std::int64_t info) {
  return stream_condition(SenseKey::kNoSense, 0x00, 0x04, info, false, true, false);
}
Result early_warning(std::int64_t info) {
  return stream_condition(SenseKey::kNoSense, 0x00, 0x02, info, false, true, false);
}
Result volume_overflow(std::int64_t info) {
  return stream_condition(SenseKey::kVolumeOverflow, 0x00, 0x02, info, false, true, false);
}
Result write_protected() { return sense(SenseKey::kDataProtect, 0x27, 0x00); }

// Adds the data transferred before a CHECK CONDITION to its Result.
Result with_data(Result r, std::size_t transferred, std::size_t requested) {
  r.data_in = transferred;
  r.residual = requested - transferred;
  return r;
}

}  // namespace

SscDrive::SscDrive(UnitIdentity identity) : LogicalUnit(std::move(identity)) {}

SscDrive::~SscDrive() {
  if (cartridge_) {
    std::string error;
    if (!cartridge_->flush(error)) spdlog::warn("tape drive: flush at shutdown: {}", error);
  }
}

void SscDrive::insert(std::unique_ptr<Cartridge> cartridge) {
  {
    std::lock_guard lock(mutex());
    cartridge_ = std::move(cartridge);
    cartridge_->set_verify_reads(verify_reads_);
    cartridge_->locate(0);
    loaded_ = true;
    prevent_removal_ = false;
  }
  set_unit_attention(0x28, 0x00);  // NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED
}

std::unique_ptr<Cartridge> SscDrive::remove(std::string& error) {
  std::lock_guard lock(mutex());
  if (!cartridge_) {
    error = "the drive is empty";
    return nullptr;
  }
  if (prevent_removal_) {
    error = "an initiator prevents medium removal";
    return nullptr;
  }
  if (!cartridge_->flush(error)) spdlog::warn("tape drive: flush on unload: {}", error);
  error.clear();
  loaded_ = false;
  return std::move(cartridge_);
}

void SscDrive::set_verify_reads(bool on) {
  std::lock_guard lock(mutex());
  verify_reads_ = on;
  if (cartridge_) cartridge_->set_verify_reads(on);
}

bool SscDrive::has_cartridge() const {
  std::lock_guard lock(mutex());
  return cartridge_ != nullptr;
}

std::string SscDrive::barcode() const {
  std::lock_guard lock(mutex());
  return cartridge_ ? cartridge_->attributes().barcode : std::string();
}

Result SscDrive::not_ready() const {
  if (!cartridge_) return sense(SenseKey::kNotReady, 0x3A, 0x00);  // MEDIUM NOT PRESENT
  // Unloaded but still in the drive: LOAD brings it back.
  return sense(SenseKey::kNotReady, 0x04, 0x02);  // INITIALIZING COMMAND REQUIRED
}

Result SscDrive::test_unit_ready() {
  if (!cartridge_ || !loaded_) return not_ready();
  return {};
}

Result SscDrive::medium_error(std::uint8_t asc, std::uint8_t ascq, const std::string& why) {
  spdlog::error("{}: {}", identity().serial, why);
  return sense(SenseKey::kMediumError, asc, ascq);
}

Bytes SscDrive::vpd_page(std::uint8_t page) const {
  if (page == 0xB0) return {0x00, 0x00};  // sequential-access capabilities: not WORM
  return {};
}

Result SscDrive::execute_class(std::span<const std::uint8_t> cdb,
                               std::span<const std::uint8_t> data_out,
                               std::span<std::uint8_t> data_in) {
  const std::uint8_t op = cdb[0];
  // Commands that need no medium.
  switch (op) {
    case kReadBlockLimits: {
      Bytes r(6, 0);
      put_be(r, 1, 3, kMaxBlockLength);
      put_be(r, 4, 2, 1);
      return respond(r, data_in);
    }
    case kModeSense6:
    case kModeSense10:
      return mode_sense(cdb, data_in);
    case kModeSelect6:
    case kModeSelect10:
      return mode_select(cdb, data_out);
    case kPreventAllow:
      prevent_removal_ = (cdb[4] & 0x03) != 0;
      return {};
    case kLoadUnload:
      return load_unload(cdb);
    case kLogSense:
      return log_sense(cdb, data_in);
    default:
      break;
  }
  if (!cartridge_ || !loaded_) {
    switch (op) {
      case kRewind:
      case kRead6:
      case kWrite6:
      case kWriteFilemarks6:
      case kSpace6:
      case kErase6:
      case kLocate10:
      case kReadPosition:
      case kSpace16:
      case kLocate16:
        return not_ready();
      default:
        return invalid_opcode();
    }
  }
  switch (op) {
    case kRewind:
      cartridge_->locate(0);
      return {};
    case kRead6:
      return read6(cdb, data_in);
    case kWrite6:
      return write6(cdb, data_out);
    case kWriteFilemarks6:
      return write_filemarks(cdb);
    case kSpace6:
      return space(cdb[1] & 0x07, sign_extend(get_be(cdb, 2, 3), 24));
    case kSpace16:
      if (get_be(cdb, 12, 2) != 0) return invalid_field_in_cdb(12);  // no parameter data
      return space(cdb[1] & 0x0F, static_cast<std::int64_t>(get_be64(cdb, 4)));
    case kLocate10:
      if (cdb[1] & 0x04) return invalid_field_in_cdb(1, 2);  // BT: only logical objects
      if ((cdb[1] & 0x02) && cdb[8] != 0) return invalid_field_in_cdb(8);  // one partition
      return locate(get_be(cdb, 3, 4));
    case kLocate16: {
      if ((cdb[1] & 0x02) && cdb[3] != 0) return invalid_field_in_cdb(3);
      const int dest = (cdb[1] >> 3) & 0x07;
      const std::uint64_t id = get_be64(cdb, 4);
      if (dest == 0) return locate(id);
      if (dest == 3) {  // end of data
        cartridge_->locate(cartridge_->end_of_data());
        return {};
      }
      if (dest == 1) {  // logical file identifier: after the id-th filemark
        if (id == 0) return locate(0);
        std::uint64_t pos = 0;
        for (std::uint64_t i = 0; i < id; ++i) {
          const auto fm = cartridge_->next_filemark(pos);
          if (!fm) {
            cartridge_->locate(cartridge_->end_of_data());
            return blank_check(0);
          }
          pos = *fm + 1;
        }
        return locate(pos);
      }
      return invalid_field_in_cdb(1, 3);
    }
    case kReadPosition:
      return read_position(cdb, data_in);
    case kErase6: {
      if (cartridge_->attributes().write_protected) return write_protected();
      std::string error;
      if (!cartridge_->erase(error)) return medium_error(0x0C, 0x00, "erase: " + error);
      return {};
    }
    default:
      return invalid_opcode();
  }
}

Result SscDrive::read6(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const bool fixed = cdb[1] & 0x01;
  const bool sili = cdb[1] & 0x02;
  const std::uint32_t length = get_be(cdb, 2, 3);
  if (fixed && sili) return invalid_field_in_cdb(1, 1);
  if (fixed && block_length_ == 0) return invalid_field_in_cdb(1, 0);
  if (length == 0) return {};
  const std::uint64_t wanted = fixed ? std::uint64_t{length} * block_length_ : length;
  if (wanted > data_in.size()) return invalid_field_in_cdb(2);  // more than the buffer holds
  std::string error;

  if (!fixed) {
    const Cartridge::Object o = cartridge_->peek();
    if (o.kind == Cartridge::Kind::kEndOfData) return blank_check(length);
    if (o.kind == Cartridge::Kind::kFilemark) {
      cartridge_->skip();
      return filemark_detected(length);
    }
    std::uint32_t size = 0;
    if (!cartridge_->read_block(data_in.first(length), size, error)) {
      return medium_error(0x11, 0x00, "read: " + error);  // UNRECOVERED READ ERROR
    }
    const std::uint32_t got = std::min(size, length);
    if (size == length || (size < length && sili)) return with_data({}, got, length);
    // Incorrect length: INFORMATION = requested - actual (negative when
    // the block was longer than asked for).
    return with_data(
        stream_condition(SenseKey::kNoSense, 0, 0, std::int64_t{length} - std::int64_t{size}, false,
                         false, true),
        got, length);
  }

  // Fixed: `length` blocks of block_length_ bytes.
  for (std::uint32_t i = 0; i < length; ++i) {
    const std::size_t done = std::size_t{i} * block_length_;
    const Cartridge::Object o = cartridge_->peek();
    if (o.kind == Cartridge::Kind::kEndOfData) {
      return with_data(blank_check(length - i), done, wanted);
    }
    if (o.kind == Cartridge::Kind::kFilemark) {
      cartridge_->skip();
      return with_data(filemark_detected(length - i), done, wanted);
    }
    std::uint32_t size = 0;
    if (!cartridge_->read_block(data_in.subspan(done, block_length_), size, error)) {
      return with_data(medium_error(0x11, 0x00, "read: " + error), done, wanted);
    }
    if (size != block_length_) {
      // INFORMATION: requested blocks minus those read, not counting the
      // block of the wrong length (which has been passed).
      return with_data(stream_condition(SenseKey::kNoSense, 0, 0, length - i, false, false, true),
                       done, wanted);
    }
  }
  return with_data({}, wanted, wanted);
}

Result SscDrive::write6(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out) {
  const bool fixed = cdb[1] & 0x01;
  const std::uint32_t length = get_be(cdb, 2, 3);
  if (fixed && block_length_ == 0) return invalid_field_in_cdb(1, 0);
  if (!fixed && length > kMaxBlockLength) return invalid_field_in_cdb(2);
  if (length == 0) return {};
  const std::uint64_t total = fixed ? std::uint64_t{length} * block_length_ : length;
  if (data_out.size() < total) return parameter_list_length_error();
  if (cartridge_->attributes().write_protected) return write_protected();

  const std::uint32_t blocks = fixed ? length : 1;
  const std::uint32_t size = fixed ? block_length_ : length;
  std::uint32_t written = 0;
  std::string error;
  switch (cartridge_->write_blocks(data_out.first(total), size, written, error)) {
    case Cartridge::WriteResult::kOk:
      return {};
    case Cartridge::WriteResult::kEarlyWarning:
      // Everything was written; past early warning the drive says so.
      return early_warning(0);
    case Cartridge::WriteResult::kOverflow:
      // The blocks that did not fit were not written: INFORMATION = those.
      return volume_overflow(fixed ? blocks - written : length);
    case Cartridge::WriteResult::kWriteProtected:
      return write_protected();
    case Cartridge::WriteResult::kIoError:
      break;
  }
  return medium_error(0x0C, 0x00, "write: " + error);  // WRITE ERROR
}

Result SscDrive::write_filemarks(std::span<const std::uint8_t> cdb) {
  const std::uint32_t count = get_be(cdb, 2, 3);
  std::string error;
  if (count == 0) {  // a request to flush the buffer
    if (!cartridge_->flush(error)) return medium_error(0x0C, 0x00, "flush: " + error);
    return {};
  }
  if (cartridge_->attributes().write_protected) return write_protected();
  switch (cartridge_->write_filemarks(count, error)) {
    case Cartridge::WriteResult::kOk:
      return {};
    case Cartridge::WriteResult::kEarlyWarning:
      return early_warning(0);
    case Cartridge::WriteResult::kOverflow:
      return volume_overflow(count);
    case Cartridge::WriteResult::kWriteProtected:
      return write_protected();
    case Cartridge::WriteResult::kIoError:
      break;
  }
  return medium_error(0x0C, 0x00, "write filemarks: " + error);
}

Result SscDrive::space(int code, std::int64_t count) {
  Cartridge& c = *cartridge_;
  if (code == 3) {  // end of data (the count is ignored)
    c.locate(c.end_of_data());
    return {};
  }
  if (count == 0) return {};
  switch (code) {
    case 0:  // logical blocks
      if (count > 0) {
        for (std::int64_t i = 0; i < count; ++i) {
          const Cartridge::Object o = c.peek();
          if (o.kind == Cartridge::Kind::kEndOfData) return blank_check(count - i);
          c.skip();
          // Spacing forward over a filemark stops after it.
          if (o.kind == Cartridge::Kind::kFilemark) return filemark_detected(count - i);
        }
        return {};
      }
      for (std::int64_t i = 0; i < -count; ++i) {
        const std::uint64_t pos = c.position();
        if (pos == 0) return beginning_of_partition(-count - i);
        c.locate(pos - 1);
        // Spacing backward, a filemark stops the head on its BOP side.
        if (c.peek().kind == Cartridge::Kind::kFilemark) return filemark_detected(-count - i);
      }
      return {};
    case 1:  // filemarks
      if (count > 0) {
        for (std::int64_t i = 0; i < count; ++i) {
          const auto fm = c.next_filemark(c.position());
          if (!fm) {
            c.locate(c.end_of_data());
            return blank_check(count - i);
          }
          c.locate(*fm + 1);
        }
        return {};
      }
      for (std::int64_t i = 0; i < -count; ++i) {
        const auto fm = c.previous_filemark(c.position());
        if (!fm) {
          c.locate(0);
          return beginning_of_partition(-count - i);
        }
        c.locate(*fm);  // the BOP side of the filemark
      }
      return {};
    default:
      return invalid_field_in_cdb(1);
  }
}

Result SscDrive::locate(std::uint64_t object) {
  if (object > cartridge_->end_of_data()) {
    cartridge_->locate(cartridge_->end_of_data());
    return blank_check(0);
  }
  cartridge_->locate(object);
  return {};
}

Result SscDrive::read_position(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const int action = cdb[1] & 0x1F;
  const Cartridge& c = *cartridge_;
  const std::uint64_t pos = c.position();
  const bool bop = pos == 0;
  const bool bpew = c.past_early_warning();
  if (action == 0x00 || action == 0x01) {  // short form (block id = object number)
    if (pos > 0xFFFFFFFFu) {
      return check_condition({.key = SenseKey::kIllegalRequest, .asc = 0x24, .ascq = 0});
    }
    Bytes r(20, 0);
    r[0] = static_cast<std::uint8_t>((bop ? 0x80 : 0) | (bpew ? 0x01 : 0));
    put_be(r, 4, 4, pos);
    put_be(r, 8, 4, pos);
    return respond(r, data_in);
  }
  if (action == 0x06) {  // long form
    Bytes r(32, 0);
    r[0] = static_cast<std::uint8_t>((bop ? 0x80 : 0) | (bpew ? 0x01 : 0));
    put_be(r, 8, 8, pos);
    put_be(r, 16, 8, c.file_number());
    return respond(r, data_in);
  }
  return invalid_field_in_cdb(1);
}

Result SscDrive::log_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const std::uint8_t pc = cdb[2] >> 6;
  const std::uint8_t page = cdb[2] & 0x3F;
  const std::size_t alloc = std::min<std::size_t>(get_be(cdb, 7, 2), data_in.size());
  if (cdb[3] != 0) return invalid_field_in_cdb(3);             // no subpages
  if (get_be(cdb, 5, 2) != 0) return invalid_field_in_cdb(5);  // parameter pointer
  if (pc != 1) return invalid_field_in_cdb(2, 6);              // only current cumulative values
  Bytes r(4, 0);
  r[0] = page;
  if (page == 0x00) {  // supported log pages
    r.push_back(0x00);
    r.push_back(0x31);
  } else if (page == 0x31) {
    // Tape capacity (SSC-4): remaining and maximum capacity of the main
    // partition in MiB; there is no alternate partition.
    if (!cartridge_ || !loaded_) return not_ready();
    const std::uint64_t capacity = cartridge_->attributes().capacity;
    const std::uint64_t used = std::min(cartridge_->bytes_used(), capacity);
    const std::uint64_t values[4] = {(capacity - used) >> 20, 0, capacity >> 20, 0};
    for (std::uint16_t code = 1; code <= 4; ++code) {
      Bytes p(8, 0);
      put_be(p, 0, 2, code);
      p[2] = 0x03;  // binary format list, as SSC-4 gives for these parameters
      p[3] = 4;
      put_be(p, 4, 4, std::min<std::uint64_t>(values[code - 1], 0xFFFFFFFFu));
      r.insert(r.end(), p.begin(), p.end());
    }
  } else {
    return invalid_field_in_cdb(2);
  }
  put_be(r, 2, 2, r.size() - 4);
  return respond(r, data_in.first(alloc));
}

Result SscDrive::load_unload(std::span<const std::uint8_t> cdb) {
  const bool load = cdb[4] & 0x01;
  const bool hold = cdb[4] & 0x08;
  if (!cartridge_) return sense(SenseKey::kNotReady, 0x3A, 0x00);
  if (load) {
    cartridge_->locate(0);
    loaded_ = true;
    return {};
  }
  if (hold) return {};  // unload "holding" the medium: stays usable
  std::string error;
  if (!cartridge_->flush(error)) return medium_error(0x0C, 0x00, "flush on unload: " + error);
  cartridge_->locate(0);
  loaded_ = false;
  return {};
}

Bytes SscDrive::mode_pages(std::uint8_t page, std::uint8_t control, bool& known) const {
  // Page 10h (device configuration) and 0Fh (data compression), both
  // unchangeable: changeable values (control 1) are all zeros.
  const bool zeros = control == 1;
  Bytes out;
  known = false;
  if (page == 0x0F || page == 0x3F) {
    known = true;
    Bytes p(16, 0);
    p[0] = 0x0F;
    p[1] = 14;
    out.insert(out.end(), p.begin(), p.end());
  }
  if (page == 0x10 || page == 0x3F) {
    known = true;
    Bytes p(16, 0);
    p[0] = 0x10;
    p[1] = 14;
    if (!zeros) p[8] = 0x01;  // BIS: block identifiers supported
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

Result SscDrive::mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const bool ten = cdb[0] == kModeSense10;
  const bool dbd = cdb[1] & 0x08;
  const std::uint8_t control = cdb[2] >> 6;
  const std::uint8_t page = cdb[2] & 0x3F;
  if (cdb[3] != 0 && cdb[3] != 0xFF) return invalid_field_in_cdb(3);      // no subpages
  if (control == 3) return sense(SenseKey::kIllegalRequest, 0x39, 0x00);  // SAVING NOT SUPPORTED
  const std::size_t alloc = std::min<std::size_t>(ten ? get_be(cdb, 7, 2) : cdb[4], data_in.size());
  bool known = false;
  const Bytes pages = mode_pages(page, control, known);
  if (!known && page != 0x00) return invalid_field_in_cdb(2);
  Bytes block;
  if (!dbd) {
    block.assign(8, 0);
    if (control != 1) {
      block[0] = 0x00;                     // density: default
      put_be(block, 5, 3, block_length_);  // 0: variable
    } else {
      put_be(block, 5, 3, 0xFFFFFF);  // the block length is changeable
    }
  }
  // Device-specific parameter: WP, and buffered mode 1.
  const bool wp = cartridge_ && cartridge_->attributes().write_protected;
  const std::uint8_t specific = static_cast<std::uint8_t>((wp ? 0x80 : 0) | 0x10);
  Bytes r;
  if (ten) {
    r.assign(8, 0);
    r[3] = specific;
    put_be(r, 6, 2, block.size());
  } else {
    r.assign(4, 0);
    r[2] = specific;
    r[3] = static_cast<std::uint8_t>(block.size());
  }
  r.insert(r.end(), block.begin(), block.end());
  r.insert(r.end(), pages.begin(), pages.end());
  if (ten) {
    put_be(r, 0, 2, r.size() - 2);
  } else {
    r[0] = static_cast<std::uint8_t>(r.size() - 1);
  }
  return respond(r, data_in.first(alloc));
}

Result SscDrive::mode_select(std::span<const std::uint8_t> cdb,
                             std::span<const std::uint8_t> data_out) {
  const bool ten = cdb[0] == kModeSelect10;
  const std::size_t length = ten ? get_be(cdb, 7, 2) : cdb[4];
  if (length == 0) return {};
  if (data_out.size() < length) return parameter_list_length_error();
  const std::span<const std::uint8_t> p = data_out.first(length);
  const std::size_t header = ten ? 8 : 4;
  if (p.size() < header) return parameter_list_length_error();
  const std::size_t bd_length = ten ? get_be(p, 6, 2) : p[3];
  if (header + bd_length > p.size()) return parameter_list_length_error();
  if (bd_length != 0 && bd_length != 8) return invalid_field_in_parameters(ten ? 6 : 3);
  if (bd_length == 8) {
    const std::uint32_t block = get_be(p, header + 5, 3);
    if (block > kMaxBlockLength)
      return invalid_field_in_parameters(static_cast<std::uint16_t>(header + 5));
    block_length_ = block;  // 0: variable block mode
  }
  // Pages: only the two this drive reports, whose fields are not changeable.
  std::size_t at = header + bd_length;
  while (at < p.size()) {
    if (at + 2 > p.size()) return parameter_list_length_error();
    const std::uint8_t code = p[at] & 0x3F;
    const std::size_t len = std::size_t{p[at + 1]} + 2;
    if (code != 0x0F && code != 0x10)
      return invalid_field_in_parameters(static_cast<std::uint16_t>(at));
    if (at + len > p.size()) return parameter_list_length_error();
    at += len;
  }
  return {};
}

}  // namespace scsi::emu
