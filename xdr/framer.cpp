#include "xdr/framer.h"

#include <algorithm>
#include <cassert>

namespace ndmp::xdr {

void put_fragment_header(std::uint32_t length, bool last, std::span<std::uint8_t> out) {
  assert(out.size() >= kFragmentHeaderSize && length <= kMaxFragmentLength);
  const std::uint32_t word = length | (last ? kLastFragmentBit : 0u);
  out[0] = static_cast<std::uint8_t>(word >> 24);
  out[1] = static_cast<std::uint8_t>(word >> 16);
  out[2] = static_cast<std::uint8_t>(word >> 8);
  out[3] = static_cast<std::uint8_t>(word);
}

void frame_record(std::span<const std::uint8_t> record, std::size_t max_fragment, Bytes& out) {
  max_fragment = std::clamp<std::size_t>(max_fragment, 1, kMaxFragmentLength);
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(max_fragment, record.size() - offset);
    const bool last = offset + n == record.size();
    const std::size_t at = out.size();
    out.resize(at + kFragmentHeaderSize);
    put_fragment_header(static_cast<std::uint32_t>(n), last, std::span(out).subspan(at));
    out.insert(out.end(), record.begin() + static_cast<std::ptrdiff_t>(offset),
               record.begin() + static_cast<std::ptrdiff_t>(offset + n));
    offset += n;
  } while (offset < record.size());
}

RecordAssembler::Result RecordAssembler::feed(std::span<const std::uint8_t> in) {
  assert(!complete_);
  std::size_t used = 0;
  while (used < in.size()) {
    if (remaining_ == 0 && header_fill_ < kFragmentHeaderSize) {
      const std::size_t n = std::min(kFragmentHeaderSize - header_fill_, in.size() - used);
      std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(used), n, header_ + header_fill_);
      header_fill_ += n;
      used += n;
      if (header_fill_ < kFragmentHeaderSize) break;
      const std::uint32_t word = (std::uint32_t{header_[0]} << 24) |
                                 (std::uint32_t{header_[1]} << 16) |
                                 (std::uint32_t{header_[2]} << 8) | std::uint32_t{header_[3]};
      const std::uint32_t length = word & kMaxFragmentLength;
      last_ = (word & kLastFragmentBit) != 0;
      in_record_ = true;
      announced_ = std::uint64_t{record_.size()} + length;
      if (announced_ > max_record_) return {used, Status::kTooLarge};
      remaining_ = length;
      if (remaining_ == 0) {
        header_fill_ = 0;
        if (last_) {
          complete_ = true;
          return {used, Status::kRecord};
        }
      }
      continue;
    }
    const std::size_t n = std::min(remaining_, in.size() - used);
    record_.insert(record_.end(), in.begin() + static_cast<std::ptrdiff_t>(used),
                   in.begin() + static_cast<std::ptrdiff_t>(used + n));
    used += n;
    remaining_ -= n;
    if (remaining_ == 0) {
      header_fill_ = 0;
      if (last_) {
        complete_ = true;
        return {used, Status::kRecord};
      }
    }
  }
  return {used, Status::kNeedMore};
}

Bytes RecordAssembler::take_record() {
  assert(complete_);
  Bytes out = std::move(record_);
  record_ = Bytes{};
  complete_ = false;
  in_record_ = false;
  last_ = false;
  return out;
}

}  // namespace ndmp::xdr
