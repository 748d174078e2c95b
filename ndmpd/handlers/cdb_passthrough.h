// EXECUTE_CDB, shared by SCSI_EXECUTE_CDB and TAPE_EXECUTE_CDB: the CDB
// and data go to the device unchanged (draft 3.3.5), on the worker pool;
// the reply carries the SCSI status, the data-in and the sense.  An NDMP
// error means the command could not be carried out at all.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "ndmpd/dispatch.h"

namespace ndmpd {

boost::asio::awaitable<Reply> execute_cdb(SessionContext& s, scsi::Device& device,
                                          const ndmp4_execute_cdb_request& req);

}  // namespace ndmpd
