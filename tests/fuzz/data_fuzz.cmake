# fuzz_image: the tar recovery engine over arbitrary images; the seeds are
# small pax images, hostile ones among them (ndmpd_fuzz_target in
# tests/CMakeLists.txt).
ndmpd_fuzz_target(image fuzz/fuzz_image.cpp LIBS ndmp_data)
