// The NDMP v4 message table: for each message code, its name and the codecs
// of its request (or post) body and of its reply body.  The rows are in
// messages.def; this header turns them into a runtime table (for dispatch,
// tracing and fuzzing) and compile-time types (for typed handlers and the
// client).  Immutable; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "xdr/codec.h"

namespace ndmp::xdr {

// Marks a message that gets no reply (posts, CONNECT_CLOSE).
struct NoReply {};

// One body codec: its XDR procedure and the size of its C struct.
struct BodyCodec {
  xdrproc_t proc = nullptr;  // nullptr: no such body (NoReply)
  std::size_t size = 0;      // 0 for Void
};

struct MessageInfo {
  std::uint32_t code;
  std::string_view name;  // "CONFIG_GET_HOST_INFO"
  BodyCodec request;      // the request, or the post body
  BodyCodec reply;        // proc == nullptr when there is no reply
  bool is_post() const;   // sent by the server as an unsolicited message
};

// The row for `code`, or nullptr if this server does not know the code.
const MessageInfo* find_message(std::uint32_t code);

// Every row, in the order of messages.def.
std::span<const MessageInfo> all_messages();

// "CONFIG_GET_HOST_INFO", or "0x7ff00123" for an unknown code.
std::string message_name(std::uint32_t code);

// Compile-time view of a row: Message<NDMP4_TAPE_OPEN>::Request, ::Reply.
template <std::uint32_t Code>
struct Message;

#define X(CODE, REQ, REP)                       \
  template <>                                   \
  struct Message<CODE> {                        \
    static constexpr std::uint32_t code = CODE; \
    using Request = REQ;                        \
    using Reply = REP;                          \
  };
#include "xdr/messages.def"
#undef X

// A decoded body of a type known only at run time (tracing, fuzzing).
class AnyBody {
 public:
  AnyBody() = default;
  AnyBody(const AnyBody&) = delete;
  AnyBody& operator=(const AnyBody&) = delete;
  ~AnyBody();

  // Decodes `in` with `codec`; false if it does not decode.
  bool decode(const BodyCodec& codec, std::span<const std::uint8_t> in);
  // Re-encodes the decoded value.
  bool encode(Bytes& out) const;
  const void* get() const { return storage_.get(); }

 private:
  void reset();
  BodyCodec codec_;
  std::unique_ptr<std::max_align_t[]> storage_;
  bool owns_ = false;
};

}  // namespace ndmp::xdr
