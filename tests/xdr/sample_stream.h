// A source of sample values for any rpcgen type: an XDR stream in decode
// mode that invents its input instead of reading it.  Numbers are small
// (so that array lengths stay short and union arms are mostly valid) and
// bytes are printable letters (so that strings survive a round trip).
// Used to build populated instances of every NDMP message for round-trip
// tests and fuzz seeds.
#pragma once

#include <cstdint>

#include "xdr/codec.h"

namespace ndmp::xdr::testing {

// Decodes a value of the type `proc` handles into the zeroed object at
// `obj` from invented input; `seed` varies the choices.  False if the
// invented discriminants did not fit (try another seed).  On success free
// the object with free_decoded().
bool sample(xdrproc_t proc, void* obj, std::size_t size, std::uint32_t seed);

}  // namespace ndmp::xdr::testing
