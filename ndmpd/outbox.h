// Where a session's outbound messages go: replies and posts (NOTIFY, LOG,
// FH), in the order they are handed over.  The session's implementation
// numbers, frames and queues them for its writer; tests record them.
//
// REQUIRES: called on the session's strand (handlers run there; background
// jobs post to it first).
#pragma once

#include <cstdint>

#include "xdr/codec.h"
#include "xdr/messages.h"

namespace ndmpd {

class Outbox {
 public:
  virtual ~Outbox() = default;

  // A reply to the request with sequence `reply_sequence`.  A non-zero
  // `header_error` goes with an empty body.
  virtual void reply(std::uint32_t code, std::uint32_t reply_sequence, ndmp4_error header_error,
                     ndmp::xdr::Bytes body) = 0;

  // A post: a message of type REQUEST that the DMA does not answer.
  virtual void post(std::uint32_t code, ndmp::xdr::Bytes body) = 0;

  template <std::uint32_t Code>
  void post(const typename ndmp::xdr::Message<Code>::Request& body) {
    post(Code, ndmp::xdr::encode(body));
  }
};

}  // namespace ndmpd
