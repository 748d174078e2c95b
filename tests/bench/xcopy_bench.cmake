# xcopy_bench: the CopyEngine moving a file-backed emulated disk to an
# emulated tape (variable and fixed mode) against dd of the same bytes.
if(NDMPD_BENCH AND NOT NDMPD_FUZZ)
  add_executable(xcopy_bench ${CMAKE_CURRENT_LIST_DIR}/xcopy_bench.cpp)
  target_link_libraries(xcopy_bench PRIVATE ndmp_scsi)
  target_compile_options(xcopy_bench PRIVATE ${NDMPD_WARNINGS})
endif()
