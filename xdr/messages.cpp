#include "xdr/messages.h"

#include <algorithm>
#include <array>
#include <cstdio>

namespace ndmp::xdr {
namespace {

template <class T>
constexpr BodyCodec codec_of() {
  if constexpr (std::is_same_v<T, NoReply>) {
    return {};
  } else if constexpr (std::is_same_v<T, Void>) {
    return {Traits<Void>::proc(), 0};
  } else {
    return {Traits<T>::proc(), sizeof(T)};
  }
}

// The name without its "NDMP4_" prefix.
constexpr std::string_view short_name(std::string_view full) {
  return full.substr(full.find('_') + 1);
}

const std::array kMessages = {
#define X(CODE, REQ, REP) MessageInfo{CODE, short_name(#CODE), codec_of<REQ>(), codec_of<REP>()},
#include "xdr/messages.def"
#undef X
};

}  // namespace

bool MessageInfo::is_post() const {
  const std::uint32_t group = code & 0xFFFFFF00u;
  return reply.proc == nullptr && code != NDMP4_CONNECT_CLOSE &&
         (group == 0x500 || group == 0x600 || group == 0x700);
}

const MessageInfo* find_message(std::uint32_t code) {
  const auto it = std::find_if(kMessages.begin(), kMessages.end(),
                               [code](const MessageInfo& m) { return m.code == code; });
  return it == kMessages.end() ? nullptr : &*it;
}

std::span<const MessageInfo> all_messages() { return kMessages; }

std::string message_name(std::uint32_t code) {
  if (const MessageInfo* m = find_message(code)) return std::string(m->name);
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", code);
  return buf;
}

AnyBody::~AnyBody() { reset(); }

void AnyBody::reset() {
  if (owns_) free_decoded(codec_.proc, storage_.get(), codec_.size);
  owns_ = false;
}

bool AnyBody::decode(const BodyCodec& codec, std::span<const std::uint8_t> in) {
  reset();
  codec_ = codec;
  if (codec.proc == nullptr) return false;
  const std::size_t units = (codec.size + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
  storage_ = std::make_unique<std::max_align_t[]>(std::max<std::size_t>(units, 1));
  owns_ = decode_into(codec.proc, in, storage_.get(), codec.size);
  return owns_;
}

bool AnyBody::encode(Bytes& out) const {
  if (codec_.proc == nullptr || (!owns_ && codec_.size != 0)) return false;
  return encode_into(codec_.proc, storage_.get(), out);
}

}  // namespace ndmp::xdr
