# The data server's backup/restore throughput against tar and ndmjob's own
# server (data_bench.sh): on demand only, never a ctest test.  Needs root.
#   cmake --build build --target data_bench     (env MIB, FILES, ROUNDS... pass through)
if(NDMPD_BENCH AND NOT NDMPD_FUZZ)
  add_custom_target(data_bench
    COMMAND ${CMAKE_COMMAND} -E env NDMPD=$<TARGET_FILE:ndmpd>
            NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>
            ${CMAKE_CURRENT_SOURCE_DIR}/bench/data_bench.sh ${CMAKE_BINARY_DIR}
    DEPENDS ndmpd ndmjob_shim
    USES_TERMINAL
    VERBATIM)
endif()
