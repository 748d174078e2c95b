// The testing extension class 0x7FF0, version 1 (ndmpd's own; the class
// range 0x7FF0-0x7FFE is reserved for testing): TEST_ECHO returns its data.
// It gives benchmarks and tests a round trip of any size through the whole
// request path, and exercises extension negotiation.

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

}  // namespace

void register_test_extension(Dispatcher& d) {
  d.add_extension_class(NDMP4_TEST_CLASS, {NDMP4_TEST_CLASS_VERSION});
  d.on<NDMP4_TEST_ECHO>(test_echo);
}

}  // namespace ndmpd
