// The daemon's handlers offload blocking work with the mover's offload().
#pragma once

#include "mover/offload.h"

namespace ndmpd {
using mover::offload;
}  // namespace ndmpd
