# The data server with Amanda's ndmjob as the DMA (ndmjob_data_test.sh):
# tar backup of a rich tree, file history, table of contents (ndmjob -t),
# full restore compared by manifest, and ndmjob's test-data suite.
# Needs root (owners, setuid, unshare -n for the peer).

# ndmjob's OWN server as data and tape server (ndmjob_peer.sh, formatter
# tests/interop/peer/wrap_tar): checks the harness itself, LOCAL, TCP and
# three-way (two peers).  Runs in a private network namespace.
add_test(NAME interop.ndmjob_data_peer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_data_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR} local tcp threeway)
set_tests_properties(interop.ndmjob_data_peer PROPERTIES TIMEOUT 600
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>;PEER=ndmjob")

# ndmpd as data server: LOCAL, TCP and swapped (DATA_LISTEN + MOVER_CONNECT)
# connections with the embedded library, with ndmjob's test-data suite;
# then three-way between two ndmpd daemons, and with ndmjob's own server as
# the tape server.
add_test(NAME interop.ndmjob_data
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_data_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR} local tcp swap)
set_tests_properties(interop.ndmjob_data PROPERTIES TIMEOUT 600
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>")
add_test(NAME interop.ndmjob_data_threeway
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_data_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR} threeway threeway-peer)
set_tests_properties(interop.ndmjob_data_threeway PROPERTIES TIMEOUT 600
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>")
