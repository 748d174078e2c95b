// The C declarations rpcgen generates from ndmp4.x (types, constants and
// xdr_* procedures), with the libtirpc headers they need.
#pragma once

#include <rpc/rpc.h>

#include "xdr/ndmp4.h"  // generated into the build tree
