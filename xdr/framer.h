// RPC record marking (RFC 5531 section 11): a record is a sequence of
// fragments, each behind a 4-byte big-endian header whose top bit marks the
// last fragment and whose low 31 bits give the fragment's length.
//
// RecordAssembler is sans-I/O: the session hands it whatever bytes arrived
// and it says when a whole record is there, or that the peer announced more
// than the configured maximum (before any of that is buffered).  Not
// thread-safe; one per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "xdr/codec.h"

namespace ndmp::xdr {

inline constexpr std::size_t kFragmentHeaderSize = 4;
inline constexpr std::uint32_t kLastFragmentBit = 0x80000000u;
inline constexpr std::uint32_t kMaxFragmentLength = 0x7FFFFFFFu;

// Writes a fragment header into the 4 bytes of `out`.
void put_fragment_header(std::uint32_t length, bool last, std::span<std::uint8_t> out);

// Appends `record` to `out` as fragments of at most `max_fragment` bytes
// (at least one fragment, even for an empty record).
void frame_record(std::span<const std::uint8_t> record, std::size_t max_fragment, Bytes& out);

class RecordAssembler {
 public:
  enum class Status {
    kNeedMore,  // every byte given was consumed; give more
    kRecord,    // a record is complete: take_record()
    kTooLarge,  // the record would exceed the maximum; the stream is unusable
  };

  struct Result {
    std::size_t consumed;
    Status status;
  };

  explicit RecordAssembler(std::size_t max_record) : max_record_(max_record) {}

  // Consumes bytes from the front of `in` up to the end of the current
  // record (never past it).  After kRecord, call take_record() before
  // feeding again; after kTooLarge, stop feeding.
  Result feed(std::span<const std::uint8_t> in);

  // The record that kRecord announced; the assembler starts a new one.
  Bytes take_record();

  // The length the peer announced for the record that was too large
  // (what has been received plus the offending fragment's length).
  std::uint64_t announced_length() const { return announced_; }

  // True between records (no fragment header or body partly received).
  bool at_record_boundary() const { return header_fill_ == 0 && remaining_ == 0 && !in_record_; }

 private:
  std::size_t max_record_;
  Bytes record_;
  std::uint8_t header_[kFragmentHeaderSize] = {};
  std::size_t header_fill_ = 0;
  std::size_t remaining_ = 0;  // bytes of the current fragment still to come
  bool last_ = false;          // the current fragment is the record's last
  bool in_record_ = false;     // at least one fragment header seen
  bool complete_ = false;
  std::uint64_t announced_ = 0;
};

}  // namespace ndmp::xdr
