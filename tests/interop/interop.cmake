# The interoperability tests' shim for Amanda's ndmjob (see ndmjob_shim.c).
add_library(ndmjob_shim SHARED ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_shim.c)
target_compile_options(ndmjob_shim PRIVATE -Wall -Wextra -Werror)
target_link_libraries(ndmjob_shim PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(ndmjob_shim PROPERTIES OUTPUT_NAME ndmjob_shim)
# It is preloaded into ndmjob, which is not built with the sanitizers.
target_compile_options(ndmjob_shim PRIVATE -fno-sanitize=all)
target_link_options(ndmjob_shim PRIVATE -fno-sanitize=all)

# ndmjob's test-tape and robot operations against the embedded library and
# against tgt's tape drive and changer, with the shim preloaded.
add_test(NAME interop.ndmjob_tape
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_tape_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR})
set_tests_properties(interop.ndmjob_tape PROPERTIES TIMEOUT 600
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>")
add_test(NAME interop.ndmjob_tgt
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_tgt_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR})
set_tests_properties(interop.ndmjob_tgt PROPERTIES TIMEOUT 900
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>")
# ndmjob's test-mover against the embedded library (LOCAL and TCP phases).
add_test(NAME interop.ndmjob_mover
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_mover_test.sh $<TARGET_FILE:ndmpd>
          ${PROJECT_SOURCE_DIR})
set_tests_properties(interop.ndmjob_mover PROPERTIES TIMEOUT 600
  ENVIRONMENT "NDMJOB_SHIM=$<TARGET_FILE:ndmjob_shim>")
