// The testing extension class 0x7FF0, version 1 (ndmpd's own; the class
// range 0x7FF0-0x7FFE is reserved for testing): TEST_ECHO returns its data;
// TEST_FAIL fails the way a request that meets an unexpected error does
// (its handler throws), which ends the session.  They give benchmarks and
// tests a round trip of any size through the whole request path, the
// release of a session's devices after a failed request, and extension
// negotiation.

#include <stdexcept>

#include "ndmpd/dispatch.h"

namespace ndmpd {
namespace {

Reply test_echo(SessionContext&, const ndmp4_test_echo_request& req) {
  ndmp4_test_echo_reply rep{};
  rep.error = NDMP4_NO_ERR;
  rep.data.data_len = req.data.data_len;
  rep.data.data_val = req.data.data_val;
  return Reply::with(rep);
}

[[noreturn]] Reply test_fail(SessionContext&, const ndmp::xdr::Void&) {
  throw std::runtime_error("TEST_FAIL: the request failed on purpose");
}

}  // namespace

void register_test_extension(Dispatcher& d) {
  d.add_extension_class(NDMP4_TEST_CLASS, {NDMP4_TEST_CLASS_VERSION});
  d.on<NDMP4_TEST_ECHO>(test_echo);
  d.on<NDMP4_TEST_FAIL>(test_fail);
}

}  // namespace ndmpd
