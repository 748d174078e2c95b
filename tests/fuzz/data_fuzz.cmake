# fuzz_image: the tar recovery engine over arbitrary images.  Like
# fuzz_wire: with -DNDMPD_FUZZ=ON (clang) it is the libFuzzer binary;
# otherwise the replay build runs the committed seed corpus (small pax
# images, hostile ones among them) in every test run.
if(NDMPD_FUZZ)
  add_executable(fuzz_image fuzz/fuzz_image.cpp)
  target_link_libraries(fuzz_image PRIVATE ndmp_data)
  target_link_options(fuzz_image PRIVATE -fsanitize=fuzzer)
else()
  add_executable(fuzz_image_replay fuzz/fuzz_image.cpp fuzz/replay_main.cpp)
  target_link_libraries(fuzz_image_replay PRIVATE ndmp_data)
  target_compile_options(fuzz_image_replay PRIVATE ${NDMPD_WARNINGS})
  add_test(NAME fuzz.image_corpus_replay
    COMMAND fuzz_image_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/image)
endif()
