// Logging set-up: spdlog to stderr.  When stderr is not a terminal (systemd,
// a pipe), each line starts with its syslog priority "<N>", which journald
// reads as the line's level; on a terminal, lines are coloured.
#pragma once

#include <string>

namespace ndmpd {

// Installs the default logger at `level` ("info", "debug", ...); false if
// the level is unknown.
bool init_logging(const std::string& level);

}  // namespace ndmpd
