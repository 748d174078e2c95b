# fuzz_xcopy: the EXTENDED COPY parameter-list decoder and the RECEIVE COPY
# RESULTS / COPY ABORTED sense decoders (ndmpd_fuzz_target in
# tests/CMakeLists.txt); fuzz_xcopy_seeds writes the seeds.
ndmpd_fuzz_target(xcopy fuzz/fuzz_xcopy.cpp LIBS ndmp_scsi SEEDS NDMPD_XCOPY_SEEDS)
