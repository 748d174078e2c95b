# The interoperability tests' shim for Amanda's ndmjob (see ndmjob_shim.c).
add_library(ndmjob_shim SHARED ${CMAKE_CURRENT_SOURCE_DIR}/interop/ndmjob_shim.c)
target_compile_options(ndmjob_shim PRIVATE -Wall -Wextra -Werror)
target_link_libraries(ndmjob_shim PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(ndmjob_shim PROPERTIES OUTPUT_NAME ndmjob_shim)
# It is preloaded into ndmjob, which is not built with the sanitizers.
target_compile_options(ndmjob_shim PRIVATE -fno-sanitize=all)
target_link_options(ndmjob_shim PRIVATE -fno-sanitize=all)
