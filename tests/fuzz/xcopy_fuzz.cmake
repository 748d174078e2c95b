# fuzz_xcopy: the EXTENDED COPY parameter-list decoder and the RECEIVE COPY
# RESULTS / COPY ABORTED sense decoders (ndmpd_fuzz_target in
# tests/CMakeLists.txt); fuzz_xcopy_seeds writes the seeds.
ndmpd_fuzz_target(xcopy fuzz/fuzz_xcopy.cpp LIBS ndmp_scsi)
if(NOT NDMPD_FUZZ)
  add_executable(fuzz_xcopy_seeds EXCLUDE_FROM_ALL fuzz/fuzz_xcopy.cpp)
  target_compile_definitions(fuzz_xcopy_seeds PRIVATE NDMPD_XCOPY_SEEDS)
  target_link_libraries(fuzz_xcopy_seeds PRIVATE ndmp_scsi)
  target_compile_options(fuzz_xcopy_seeds PRIVATE ${NDMPD_WARNINGS})
endif()
