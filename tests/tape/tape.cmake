# The conformance suite of tape_test runs against tgt too: it needs the tgt
# fixture (tests/scsi/tgt_fixture.*) and the paths it uses.
if(TARGET tape_test)
  target_sources(tape_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/scsi/tgt_fixture.cpp)
  target_compile_definitions(tape_test PRIVATE
    NDMPD_TGT_SH="${CMAKE_CURRENT_SOURCE_DIR}/support/tgt.sh"
    NDMPD_SGISCSI_PRELOAD="$<TARGET_FILE:sgiscsi_preload>")
  add_dependencies(tape_test sgiscsi_preload)
endif()
