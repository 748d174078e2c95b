# Test support for the SCSI transports: tgt.sh runs a private tgtd (tgt's
# iSCSI target) on 127.0.0.1, tests/scsi/tgt_fixture.* drives it from
# GoogleTest, and the sgiscsi_preload shim serves SG_IO through libiscsi so
# that the sg transport runs without kernel SCSI.  Included in the tests/
# directory's scope, after scsi_test is defined.

# The C subset of the warnings (the rest are C++-only flags).
set(ndmpd_c_warnings ${NDMPD_WARNINGS})
list(REMOVE_ITEM ndmpd_c_warnings -Wnon-virtual-dtor -Woverloaded-virtual)

add_library(sgiscsi_preload SHARED ${CMAKE_CURRENT_SOURCE_DIR}/support/sgiscsi_preload.c)
target_link_libraries(sgiscsi_preload PRIVATE PkgConfig::ISCSI Threads::Threads ${CMAKE_DL_LIBS})
target_compile_options(sgiscsi_preload PRIVATE ${ndmpd_c_warnings})

if(TARGET scsi_test)
  target_sources(scsi_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/scsi/tgt_fixture.cpp)
  target_compile_definitions(scsi_test PRIVATE
    NDMPD_TGT_SH="${CMAKE_CURRENT_SOURCE_DIR}/support/tgt.sh"
    NDMPD_SGISCSI_PRELOAD="$<TARGET_FILE:sgiscsi_preload>")
  add_dependencies(scsi_test sgiscsi_preload)
endif()
