# Gives every enum in the rpcgen header a fixed underlying type when it is
# compiled as C++.  A peer can put any 32-bit value into an enum field, and
# in C++ holding a value outside an enum's range is undefined behaviour
# unless the enum has a fixed underlying type; with one, every int is a
# valid value and handlers can reject bad values (ILLEGAL_ARGS) safely.
# The C side (the generated procedures) is unchanged: the layout is the
# same 4-byte int either way.
file(READ "${HEADER}" text)
string(REGEX REPLACE "enum ([A-Za-z0-9_]+) {" "enum \\1 NDMP4_ENUM_BASE {" text "${text}")
set(prefix "#ifdef __cplusplus\n#define NDMP4_ENUM_BASE : int\n#else\n#define NDMP4_ENUM_BASE\n#endif\n")
file(WRITE "${HEADER}" "${prefix}${text}")
