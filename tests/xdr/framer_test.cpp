// RPC record marking: fragments join into records, records split into
// fragments, and a record over the maximum is refused as soon as a fragment
// header announces it.

#include "xdr/framer.h"

#include <gtest/gtest.h>

#include <numeric>

namespace ndmp::xdr {
namespace {

Bytes pattern(std::size_t n) {
  Bytes b(n);
  std::iota(b.begin(), b.end(), std::uint8_t{1});
  return b;
}

// Feeds `wire` in chunks of `chunk` bytes; returns the records it yields.
std::vector<Bytes> feed_all(RecordAssembler& a, const Bytes& wire, std::size_t chunk) {
  std::vector<Bytes> records;
  std::size_t at = 0;
  while (at < wire.size()) {
    const std::size_t n = std::min(chunk, wire.size() - at);
    std::span<const std::uint8_t> piece(wire.data() + at, n);
    while (!piece.empty()) {
      const auto r = a.feed(piece);
      piece = piece.subspan(r.consumed);
      EXPECT_NE(r.status, RecordAssembler::Status::kTooLarge);
      if (r.status == RecordAssembler::Status::kRecord) records.push_back(a.take_record());
    }
    at += n;
  }
  return records;
}

TEST(Framer, SplitsAndJoinsAcrossFragmentAndChunkSizes) {
  const Bytes record = pattern(1000);
  for (std::size_t fragment : {1u, 3u, 4u, 100u, 999u, 1000u, 4096u}) {
    Bytes wire;
    frame_record(record, fragment, wire);
    frame_record(record, fragment, wire);  // two records back to back
    const std::size_t fragments = (record.size() + fragment - 1) / fragment;
    EXPECT_EQ(wire.size(), 2 * (record.size() + 4 * fragments));
    for (std::size_t chunk : {1u, 2u, 5u, 64u, 100000u}) {
      RecordAssembler a(1 << 20);
      const auto records = feed_all(a, wire, chunk);
      ASSERT_EQ(records.size(), 2u) << fragment << "/" << chunk;
      EXPECT_EQ(records[0], record);
      EXPECT_EQ(records[1], record);
      EXPECT_TRUE(a.at_record_boundary());
    }
  }
}

TEST(Framer, OnlyTheLastFragmentCarriesTheTopBit) {
  Bytes wire;
  frame_record(pattern(10), 4, wire);
  // 4+4, 4+4, 4+2
  ASSERT_EQ(wire.size(), 22u);
  EXPECT_EQ(wire[0], 0x00);
  EXPECT_EQ(wire[3], 4);
  EXPECT_EQ(wire[8], 0x00);
  EXPECT_EQ(wire[16], 0x80);
  EXPECT_EQ(wire[19], 2);
}

TEST(Framer, EmptyRecordAndEmptyFragments) {
  Bytes wire;
  frame_record({}, 16, wire);
  EXPECT_EQ(wire, (Bytes{0x80, 0, 0, 0}));
  // Zero-length fragments before the data are legal.
  Bytes joined = {0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 2, 7, 8};
  RecordAssembler a(100);
  const auto records = feed_all(a, joined, 3);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0], (Bytes{7, 8}));
  RecordAssembler b(100);
  const auto empty = feed_all(b, wire, 1);
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_TRUE(empty[0].empty());
}

TEST(Framer, RefusesAnOversizeRecordAtItsFragmentHeader) {
  // A header announcing 2 GiB - 1: refused after its 4 bytes, with nothing
  // buffered.
  const Bytes wire = {0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3};
  RecordAssembler a(16 << 20);
  const auto r = a.feed(wire);
  EXPECT_EQ(r.status, RecordAssembler::Status::kTooLarge);
  EXPECT_EQ(r.consumed, 4u);
  EXPECT_EQ(a.announced_length(), 0x7FFFFFFFu);
}

TEST(Framer, RefusesARecordThatGrowsPastTheMaximumAcrossFragments) {
  Bytes wire;
  frame_record(pattern(100), 40, wire);  // 40 + 40 + 20
  RecordAssembler a(90);
  std::span<const std::uint8_t> in(wire);
  RecordAssembler::Result r{};
  while (!in.empty()) {
    r = a.feed(in);
    in = in.subspan(r.consumed);
    if (r.status != RecordAssembler::Status::kNeedMore) break;
  }
  EXPECT_EQ(r.status, RecordAssembler::Status::kTooLarge);
  EXPECT_EQ(a.announced_length(), 100u);
}

TEST(Framer, ExactlyTheMaximumIsAccepted) {
  Bytes wire;
  frame_record(pattern(90), 30, wire);
  RecordAssembler a(90);
  const auto records = feed_all(a, wire, 7);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].size(), 90u);
}

}  // namespace
}  // namespace ndmp::xdr
