# fuzz_scsi: the pure SCSI codecs (sense, data-in parsers, CDB builders).
# Like fuzz_wire: with -DNDMPD_FUZZ=ON (clang) it is the libFuzzer binary;
# otherwise the replay build runs the committed seed corpus in every test
# run, and under the sanitizers with -DNDMPD_SANITIZE=ON.
if(NDMPD_FUZZ)
  add_executable(fuzz_scsi fuzz/fuzz_scsi.cpp)
  target_link_libraries(fuzz_scsi PRIVATE ndmp_scsi)
  target_link_options(fuzz_scsi PRIVATE -fsanitize=fuzzer)
else()
  add_executable(fuzz_scsi_replay fuzz/fuzz_scsi.cpp fuzz/replay_main.cpp)
  target_link_libraries(fuzz_scsi_replay PRIVATE ndmp_scsi)
  target_compile_options(fuzz_scsi_replay PRIVATE ${NDMPD_WARNINGS})
  add_test(NAME fuzz.scsi_corpus_replay
    COMMAND fuzz_scsi_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/scsi)
endif()
