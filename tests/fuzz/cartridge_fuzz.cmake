# fuzz_cartridge: opening (recovering) a cartridge of the virtual tape
# library from arbitrary map and data files, then visiting and writing it
# (ndmpd_fuzz_target in tests/CMakeLists.txt); fuzz_cartridge_seeds writes
# the seeds.
ndmpd_fuzz_target(cartridge fuzz/fuzz_cartridge.cpp LIBS ndmp_scsi SEEDS NDMPD_CARTRIDGE_SEEDS)
