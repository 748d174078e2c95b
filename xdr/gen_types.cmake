# Writes OUT: one NDMP_XDR_TRAITS(name) line for every struct and union that
# IN (the .x schema) declares, so that the C++ layer knows every generated
# type by name without a second list to keep in step.
file(STRINGS "${IN}" lines REGEX "^(struct|union)[ \t]+[A-Za-z0-9_]+")
set(body "// Generated from ndmp4.x by gen_types.cmake; do not edit.\n")
foreach(line IN LISTS lines)
  string(REGEX REPLACE "^(struct|union)[ \t]+([A-Za-z0-9_]+).*" "\\2" name "${line}")
  string(APPEND body "NDMP_XDR_TRAITS(${name})\n")
endforeach()
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
