/* See call.c. */
#pragma once

#include <rpc/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

int ndmp_xdr_call(xdrproc_t proc, XDR* xdrs, void* obj);

#ifdef __cplusplus
}
#endif
