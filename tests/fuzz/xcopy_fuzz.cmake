# fuzz_xcopy: the EXTENDED COPY parameter-list decoder and the RECEIVE COPY
# RESULTS / COPY ABORTED sense decoders.  Like fuzz_scsi: with
# -DNDMPD_FUZZ=ON (clang) it is the libFuzzer binary; otherwise the replay
# build runs the committed seed corpus in every test run, and under the
# sanitizers with -DNDMPD_SANITIZE=ON.  fuzz_xcopy_seeds writes the seeds.
if(NDMPD_FUZZ)
  add_executable(fuzz_xcopy fuzz/fuzz_xcopy.cpp)
  target_link_libraries(fuzz_xcopy PRIVATE ndmp_scsi)
  target_link_options(fuzz_xcopy PRIVATE -fsanitize=fuzzer)
else()
  add_executable(fuzz_xcopy_replay fuzz/fuzz_xcopy.cpp fuzz/replay_main.cpp)
  target_link_libraries(fuzz_xcopy_replay PRIVATE ndmp_scsi)
  target_compile_options(fuzz_xcopy_replay PRIVATE ${NDMPD_WARNINGS})
  add_test(NAME fuzz.xcopy_corpus_replay
    COMMAND fuzz_xcopy_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/xcopy)

  add_executable(fuzz_xcopy_seeds EXCLUDE_FROM_ALL fuzz/fuzz_xcopy.cpp)
  target_compile_definitions(fuzz_xcopy_seeds PRIVATE NDMPD_XCOPY_SEEDS)
  target_link_libraries(fuzz_xcopy_seeds PRIVATE ndmp_scsi)
  target_compile_options(fuzz_xcopy_seeds PRIVATE ${NDMPD_WARNINGS})
endif()
