// The XDR codec: every message body of the table round-trips, every
// truncation and every trailing byte is refused, and the wire layout of the
// fields DMAs depend on is exact.

#include "xdr/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "sample_stream.h"
#include "xdr/header.h"
#include "xdr/messages.h"

namespace ndmp::xdr {
namespace {

// Encodes a sampled value of `codec`, decodes the bytes, encodes again:
// the two encodings must be equal.  Returns the first encoding.
Bytes round_trip(const BodyCodec& codec, std::uint32_t seed, bool& sampled) {
  std::vector<std::max_align_t> storage(codec.size / sizeof(std::max_align_t) + 1);
  sampled = testing::sample(codec.proc, storage.data(), codec.size, seed);
  if (!sampled) return {};
  Bytes first;
  EXPECT_TRUE(encode_into(codec.proc, storage.data(), first));
  free_decoded(codec.proc, storage.data(), codec.size);

  AnyBody decoded;
  EXPECT_TRUE(decoded.decode(codec, first));
  Bytes second;
  EXPECT_TRUE(decoded.encode(second));
  EXPECT_EQ(first, second);
  return first;
}

class EveryMessage : public ::testing::TestWithParam<MessageInfo> {};

TEST_P(EveryMessage, RequestAndReplyBodiesRoundTrip) {
  const MessageInfo& m = GetParam();
  for (const BodyCodec* codec : {&m.request, &m.reply}) {
    if (codec->proc == nullptr) continue;  // no reply
    int done = 0;
    for (std::uint32_t seed = 0; seed < 400 && done < 25; ++seed) {
      bool sampled = false;
      const Bytes bytes = round_trip(*codec, seed, sampled);
      if (!sampled) continue;
      ++done;
      // Every proper prefix is refused, and so is one extra word.
      AnyBody body;
      for (std::size_t cut = 0; cut < bytes.size(); cut += 4) {
        EXPECT_FALSE(body.decode(*codec, std::span(bytes).first(cut)))
            << m.name << " decoded from " << cut << " of " << bytes.size() << " bytes";
      }
      Bytes longer = bytes;
      longer.insert(longer.end(), 4, 0);
      EXPECT_FALSE(body.decode(*codec, longer)) << m.name << " accepted a trailing word";
    }
    EXPECT_GT(done, 0) << m.name << ": no sample fitted the type";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, EveryMessage,
                         ::testing::ValuesIn(all_messages().begin(), all_messages().end()),
                         [](const ::testing::TestParamInfo<MessageInfo>& p) {
                           return std::string(p.param.name);
                         });

TEST(MessageTable, KnowsEveryCodeOfTheSpecOnce) {
  const std::uint32_t spec_codes[] = {
      0x900, 0x901, 0x902, 0x903, 0x100, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107,
      0x108, 0x109, 0x10A, 0x200, 0x201, 0x202, 0x204, 0x206, 0x300, 0x301, 0x302,
      0x303, 0x304, 0x305, 0x307, 0x400, 0x401, 0x402, 0x403, 0x404, 0x407, 0x409,
      0x40A, 0x40B, 0x501, 0x502, 0x503, 0x504, 0x505, 0x602, 0x603, 0x703, 0x704,
      0x705, 0xA00, 0xA01, 0xA02, 0xA03, 0xA04, 0xA05, 0xA06, 0xA07, 0xA08, 0xA09};
  for (std::uint32_t code : spec_codes) {
    const MessageInfo* m = find_message(code);
    ASSERT_NE(m, nullptr) << std::hex << code;
    EXPECT_EQ(m->code, code);
  }
  EXPECT_EQ(all_messages().size(), std::size(spec_codes) + 2);  // + TEST_ECHO, TEST_FAIL
  EXPECT_EQ(find_message(0x101), nullptr);                      // v2's GET_BUTYPE_ATTR
  EXPECT_EQ(message_name(NDMP4_CONFIG_GET_HOST_INFO), "CONFIG_GET_HOST_INFO");
  EXPECT_EQ(message_name(0x12345678), "0x12345678");
}

TEST(MessageTable, PostsAndCloseHaveNoReply) {
  for (const MessageInfo& m : all_messages()) {
    const std::uint32_t group = m.code >> 8;
    const bool post = group == 0x5 || group == 0x6 || group == 0x7;
    EXPECT_EQ(m.is_post(), post) << m.name;
    EXPECT_EQ(m.reply.proc == nullptr, post || m.code == NDMP4_CONNECT_CLOSE) << m.name;
  }
}

// Byte layouts that interoperability depends on (draft-skardal-ndmpv4-04).

Bytes words(std::initializer_list<std::uint32_t> ws) {
  Bytes out;
  for (std::uint32_t w : ws) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(w >> s));
  }
  return out;
}

TEST(WireLayout, HeaderIsSixWordsInSpecOrder) {
  ndmp4_header h{
      7, 1000, NDMP4_MESSAGE_REPLY, NDMP4_CONFIG_GET_HOST_INFO, 6, NDMP4_NOT_AUTHORIZED_ERR};
  const auto head = frame_head(h, 12);
  EXPECT_EQ(Bytes(head.begin(), head.end()), words({0x80000000u | 36, 7, 1000, 1, 0x100, 6, 4}));
  const Bytes enc = encode(h);
  ASSERT_EQ(enc.size(), kHeaderSize);
  const auto back = decode_header(enc);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->message_code, 0x100u);
  EXPECT_EQ(back->error_code, NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_FALSE(decode_header(std::span(enc).first(23)));
}

TEST(WireLayout, ConnectionStatusCarriesTextReason) {
  ndmp4_notify_connection_status_post p{NDMP4_REFUSED, 4, const_cast<char*>("busy")};
  EXPECT_EQ(encode(p), words({2, 4, 4, 0x62757379}));
}

TEST(WireLayout, Md5AuthDigestIsFixedOpaqueWithoutLength) {
  ndmp4_connect_client_auth_request r{};
  r.auth_data.auth_type = NDMP4_AUTH_MD5;
  r.auth_data.ndmp4_auth_data_u.auth_md5.auth_id = const_cast<char*>("ab");
  std::memset(r.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, 0xEE, 16);
  Bytes expect = words({2, 2, 0x61620000});
  expect.insert(expect.end(), 16, 0xEE);
  EXPECT_EQ(encode(r), expect);
}

TEST(WireLayout, TapeStateHasUnsupportedFirstAndNoPartition) {
  ndmp4_tape_get_state_reply r{};
  r.unsupported = 0x30;
  r.error = NDMP4_NO_ERR;
  r.flags = 0x10;
  r.file_num = 1;
  r.soft_errors = 2;
  r.block_size = 512;
  r.blockno = 3;
  r.total_space = 0x0000000100000002ull;
  r.space_remain = 5;
  EXPECT_EQ(encode(r), words({0x30, 0, 0x10, 1, 2, 512, 3, 1, 2, 0, 5}));
}

TEST(WireLayout, TcpAddressIsAnArrayInVersion4) {
  ndmp4_tcp_addr a{0x7F000001, 10000, {0, nullptr}};
  ndmp4_mover_listen_reply r{};
  r.error = NDMP4_NO_ERR;
  r.connect_addr.addr_type = NDMP4_ADDR_TCP;
  r.connect_addr.ndmp4_addr_u.tcp_addr = {1, &a};
  EXPECT_EQ(encode(r), words({0, 1, 1, 0x7F000001, 10000, 0}));
}

TEST(WireLayout, ExtensionSelectionHasNoErrorField) {
  ndmp4_class_version cv{0x7FF0, 1};
  ndmp4_config_set_ext_list_request r{{1, &cv}};
  EXPECT_EQ(encode(r), words({1, 0x7FF0, 1}));
}

TEST(Decode, RefusesLengthsBeyondTheSchemaBound) {
  // A string announcing 65537 bytes (one over NDMP4_MAX_STRING) is refused
  // before anything is allocated for it.
  Decoded<ndmp4_scsi_open_request> r;
  EXPECT_FALSE(r.decode(words({65537})));
  // An opaque announcing 2 GiB, with nothing behind it.
  Decoded<ndmp4_tape_write_request> w;
  EXPECT_FALSE(w.decode(words({0x80000000u})));
}

TEST(Decode, UnknownUnionArmIsRefused) {
  Decoded<ndmp4_connect_client_auth_request> r;
  EXPECT_FALSE(r.decode(words({9})));
}

TEST(Decoded, MoveTransfersOwnership) {
  Decoded<ndmp4_scsi_open_request> a;
  ASSERT_TRUE(a.decode(words({3, 0x61626300})));
  Decoded<ndmp4_scsi_open_request> b(std::move(a));
  EXPECT_STREQ(b->device, "abc");
  EXPECT_EQ(a->device, nullptr);
  Decoded<ndmp4_scsi_open_request> c;
  c = std::move(b);
  EXPECT_STREQ(c->device, "abc");
}

}  // namespace
}  // namespace ndmp::xdr
