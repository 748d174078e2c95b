/*
 * Calls an rpcgen procedure through the generic xdrproc_t.  It lives in C
 * because the generated procedures have their own prototypes; calling them
 * through xdrproc_t is the XDR library's own idiom (xdr_free does it), and
 * in C++ the sanitizers rightly flag such a call.
 */
#include "xdr/call.h"

int ndmp_xdr_call(xdrproc_t proc, XDR* xdrs, void* obj) { return proc(xdrs, obj); }
