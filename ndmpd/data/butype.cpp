#include "ndmpd/data/butype.h"

#include "xdr/ndmp4_wire.h"

namespace ndmpd {

void register_tar_butype(ButypeRegistry& registry) {
  // The environment the tar format reads, with the value it assumes when
  // the DMA leaves a variable out (data/env.cpp reads them).
  Butype tar;
  tar.name = "tar";
  tar.default_env = {
      {"TYPE", "tar"}, {"HIST", "n"},      {"LEVEL", "0"},  {"UPDATE", "y"},
      {"DIRECT", "n"}, {"RECURSIVE", "y"}, {"EXCLUDE", ""},
  };
  // No BACKUP_FILELIST: a backup is of one FILESYSTEM (with EXCLUDE), not
  // of a list of names in it.
  tar.attrs = NDMP4_BUTYPE_RECOVER_FILELIST | NDMP4_BUTYPE_BACKUP_DIRECT |
              NDMP4_BUTYPE_RECOVER_DIRECT | NDMP4_BUTYPE_BACKUP_INCREMENTAL |
              NDMP4_BUTYPE_RECOVER_INCREMENTAL | NDMP4_BUTYPE_BACKUP_UTF8 |
              NDMP4_BUTYPE_RECOVER_UTF8 | NDMP4_BUTYPE_BACKUP_FH_FILE | NDMP4_BUTYPE_BACKUP_FH_DIR |
              NDMP4_BUTYPE_RECOVER_FILEHIST;
  registry.add(std::move(tar));
}

}  // namespace ndmpd
