# fuzz_scsi: the pure SCSI codecs (sense, data-in parsers, CDB builders)
# (ndmpd_fuzz_target in tests/CMakeLists.txt).
ndmpd_fuzz_target(scsi fuzz/fuzz_scsi.cpp LIBS ndmp_scsi)
