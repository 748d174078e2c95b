# integration_test drives ndmpd against tgt's iSCSI devices too: it needs
# the tgt fixture (tests/scsi/tgt_fixture.*) and the paths it uses.
if(TARGET integration_test)
  target_sources(integration_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/scsi/tgt_fixture.cpp)
  target_compile_definitions(integration_test PRIVATE
    NDMPD_TGT_SH="${CMAKE_CURRENT_SOURCE_DIR}/support/tgt.sh"
    NDMPD_SGISCSI_PRELOAD="$<TARGET_FILE:sgiscsi_preload>")
  add_dependencies(integration_test sgiscsi_preload)
endif()
