# `ndmpd xcopy`: the real binary's subcommand against a scratch
# configuration and state directory (the virtual SAN's disks, a virtual
# library, the emulated copy manager), and beside a running daemon.
ndmpd_test(xcopy_command_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/xcopy_command_test.cpp
  LIBS ndmpd_daemon_fixture)
add_dependencies(xcopy_command_test ndmpd)
