// What one NDMP session knows about its conversation with the DMA: version
// agreement, login, the MD5 challenge, extension negotiation.  Plain data,
// owned by the session and touched only on its strand.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "ndmpd/auth.h"
#include "ndmpd/config.h"

namespace ndmpd {

// CONFIG_GET_EXT_LIST must come before CONFIG_SET_EXT_LIST; after a
// successful SET, or after the first extension request (which selects the
// default version of every class), negotiation is over.
enum class ExtPhase { kNotListed, kListed, kSelected };

struct SessionState {
  bool version_agreed = false;  // CONNECT_OPEN accepted
  bool other_request = false;   // a request other than CONNECT_OPEN was seen
  bool authenticated = false;
  std::string user;
  AuthMethod auth_method = AuthMethod::kNone;
  std::optional<Challenge> challenge;  // from the last GET_AUTH_ATTR(MD5)
  unsigned auth_failures = 0;

  ExtPhase ext_phase = ExtPhase::kNotListed;
  std::map<std::uint16_t, std::uint16_t> extensions;  // class -> version

  bool closing = false;  // close the connection once the reply is out
};

}  // namespace ndmpd
