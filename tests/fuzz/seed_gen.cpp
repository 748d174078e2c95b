// Writes the seed corpus of fuzz_wire into a directory: for every message
// of the table, framed records of sampled request bodies (as the first
// message after a login, and pre-login), and a complete MD5-less login
// conversation.  Run once by hand; the corpus is committed.
//
//   fuzz_seed_gen tests/fuzz/corpus/wire

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "xdr/header.h"
#include "xdr/messages.h"
#include "xdr/sample_stream.h"

namespace {

using ndmp::xdr::Bytes;

void add_message(Bytes& out, std::uint32_t seq, std::uint32_t code, const Bytes& body) {
  ndmp4_header h{};
  h.sequence = seq;
  h.message_type = NDMP4_MESSAGE_REQUEST;
  h.message_code = code;
  const auto head = ndmp::xdr::frame_head(h, body.size());
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), body.begin(), body.end());
}

void write(const std::filesystem::path& dir, const std::string& name, const Bytes& b) {
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seed_gen DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  int files = 0;
  for (const ndmp::xdr::MessageInfo& m : ndmp::xdr::all_messages()) {
    const ndmp::xdr::BodyCodec& c = m.request;
    int made = 0;
    for (std::uint32_t seed = 0; seed < 200 && made < 2; ++seed) {
      std::vector<std::max_align_t> storage(c.size / sizeof(std::max_align_t) + 1);
      if (!ndmp::xdr::testing::sample(c.proc, storage.data(), c.size, seed)) continue;
      Bytes body;
      ndmp::xdr::encode_into(c.proc, storage.data(), body);
      ndmp::xdr::free_decoded(c.proc, storage.data(), c.size);
      // First byte: bit 0 = logged in, the rest = feeding chunk size.
      Bytes input = {static_cast<std::uint8_t>(made == 0 ? 0xFF : 0x10)};
      add_message(input, 1, m.code, body);
      write(dir, std::string(m.name) + "-" + std::to_string(made), input);
      ++made;
      ++files;
    }
  }
  // A conversation: open, text login, a few CONFIG requests, close.
  Bytes conv = {0xFE};
  add_message(conv, 1, NDMP4_CONNECT_OPEN, {0, 0, 0, 4});
  add_message(
      conv, 2, NDMP4_CONNECT_CLIENT_AUTH,
      {0, 0, 0, 1, 0, 0, 0, 3, 'd', 'm', 'a', 0, 0, 0, 0, 6, 's', 'e', 'c', 'r', 'e', 't', 0, 0});
  add_message(conv, 3, NDMP4_CONFIG_GET_HOST_INFO, {});
  add_message(conv, 4, NDMP4_CONFIG_GET_EXT_LIST, {});
  add_message(conv, 5, NDMP4_CONFIG_SET_EXT_LIST, {0, 0, 0, 1, 0, 0, 0x7F, 0xF0, 0, 0, 0, 1});
  add_message(conv, 6, NDMP4_TEST_ECHO, {0, 0, 0, 2, 'h', 'i', 0, 0});
  add_message(conv, 7, NDMP4_CONNECT_CLOSE, {});
  write(dir, "conversation-login", conv);
  ++files;
  std::cout << "wrote " << files << " seeds to " << dir << "\n";
  return 0;
}
