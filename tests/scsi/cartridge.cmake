# The cartridge's crash test runs cartridge_writer as its child and kills it;
# cartridge_bench compares the cartridge's throughput with dd's.

add_executable(cartridge_writer ${CMAKE_CURRENT_LIST_DIR}/cartridge_writer.cpp)
target_link_libraries(cartridge_writer PRIVATE ndmp_scsi)
target_compile_options(cartridge_writer PRIVATE ${NDMPD_WARNINGS})

if(TARGET scsi_test)
  target_compile_definitions(scsi_test PRIVATE
    CARTRIDGE_WRITER="$<TARGET_FILE:cartridge_writer>")
  add_dependencies(scsi_test cartridge_writer)
endif()

if(NDMPD_BENCH AND NOT NDMPD_FUZZ)
  add_executable(cartridge_bench ${CMAKE_CURRENT_SOURCE_DIR}/bench/cartridge_bench.cpp)
  target_link_libraries(cartridge_bench PRIVATE ndmp_scsi)
  target_compile_options(cartridge_bench PRIVATE ${NDMPD_WARNINGS})
endif()
