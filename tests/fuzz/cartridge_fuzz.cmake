# fuzz_cartridge: opening (recovering) a cartridge of the virtual tape
# library from arbitrary map and data files, then visiting and writing it
# (ndmpd_fuzz_target in tests/CMakeLists.txt); fuzz_cartridge_seeds writes
# the seeds.
ndmpd_fuzz_target(cartridge fuzz/fuzz_cartridge.cpp LIBS ndmp_scsi)
if(NOT NDMPD_FUZZ)
  add_executable(fuzz_cartridge_seeds EXCLUDE_FROM_ALL fuzz/fuzz_cartridge.cpp)
  target_compile_definitions(fuzz_cartridge_seeds PRIVATE NDMPD_CARTRIDGE_SEEDS)
  target_link_libraries(fuzz_cartridge_seeds PRIVATE ndmp_scsi)
  target_compile_options(fuzz_cartridge_seeds PRIVATE ${NDMPD_WARNINGS})
endif()
