# fuzz_cartridge: opening (recovering) a cartridge of the virtual tape
# library from arbitrary map and data files, then visiting and writing it.
# Like fuzz_scsi: with -DNDMPD_FUZZ=ON (clang) it is the libFuzzer binary;
# otherwise the replay build runs the committed seed corpus in every test
# run, and under the sanitizers with -DNDMPD_SANITIZE=ON.
# fuzz_cartridge_seeds writes the seeds.
if(NDMPD_FUZZ)
  add_executable(fuzz_cartridge fuzz/fuzz_cartridge.cpp)
  target_link_libraries(fuzz_cartridge PRIVATE ndmp_scsi)
  target_link_options(fuzz_cartridge PRIVATE -fsanitize=fuzzer)
else()
  add_executable(fuzz_cartridge_replay fuzz/fuzz_cartridge.cpp fuzz/replay_main.cpp)
  target_link_libraries(fuzz_cartridge_replay PRIVATE ndmp_scsi)
  target_compile_options(fuzz_cartridge_replay PRIVATE ${NDMPD_WARNINGS})
  add_test(NAME fuzz.cartridge_corpus_replay
    COMMAND fuzz_cartridge_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/cartridge)

  add_executable(fuzz_cartridge_seeds EXCLUDE_FROM_ALL fuzz/fuzz_cartridge.cpp)
  target_compile_definitions(fuzz_cartridge_seeds PRIVATE NDMPD_CARTRIDGE_SEEDS)
  target_link_libraries(fuzz_cartridge_seeds PRIVATE ndmp_scsi)
  target_compile_options(fuzz_cartridge_seeds PRIVATE ${NDMPD_WARNINGS})
endif()
