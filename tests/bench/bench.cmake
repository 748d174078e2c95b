# Benchmarks beside session_bench and tape_bench (included from
# tests/CMakeLists.txt, in its scope): run on demand, print figures.
if(NDMPD_BENCH AND NOT NDMPD_FUZZ)
  # TAPE_WRITE/TAPE_READ throughput of ndmpd's tape service against ndmjob's
  # own NDMP server; run it through tape_service_bench.sh.
  add_executable(tape_service_bench bench/tape_service_bench.cpp)
  target_link_libraries(tape_service_bench PRIVATE ndmp_client ndmpd_daemon_fixture
                        CLI11::CLI11)
  target_compile_options(tape_service_bench PRIVATE ${NDMPD_WARNINGS})
  add_dependencies(tape_service_bench ndmpd)
endif()

if(NDMPD_BENCH AND NOT NDMPD_FUZZ)
  # Mover backup throughput over TCP (a second process) and LOCAL (in
  # process) to the emulated tape, against dd.
  add_executable(mover_bench bench/mover_bench.cpp)
  target_link_libraries(mover_bench PRIVATE ndmp_mover CLI11::CLI11)
  target_compile_options(mover_bench PRIVATE ${NDMPD_WARNINGS})
endif()
