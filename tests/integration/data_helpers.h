// Helpers for the data server's integration tests (data_server_test.cpp):
// a DMA with the DATA and MOVER calls, a collector of the posts a data
// operation sends (NOTIFY_*, LOG_*, FH_*), the DMA's event loop that
// answers NOTIFY_DATA_READ and the mover's pauses, scratch directories and
// file trees to back up and compare.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dma.h"

namespace ndmpd::itest {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::uint64_t kInf = ~0ull;

using EnvList = std::vector<std::pair<std::string, std::string>>;

// A directory under /tmp (mkdtemp), removed with everything in it.
class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/ndmpd-dit-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = d;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  const fs::path& dir() const { return dir_; }
  fs::path operator/(const std::string& p) const { return dir_ / p; }

 private:
  fs::path dir_;
};

// ---- file trees

inline void set_mtime(const fs::path& p, std::int64_t seconds, bool symlink = false) {
  timespec ts[2] = {{static_cast<time_t>(seconds), 0}, {static_cast<time_t>(seconds), 0}};
  ::utimensat(AT_FDCWD, p.c_str(), ts, symlink ? AT_SYMLINK_NOFOLLOW : 0);
}

// Writes `content` to `p` (creating its directories), with `mode` and,
// if given, mtime `mtime`.
inline void put_file(const fs::path& p, const std::string& content, mode_t mode = 0644,
                     std::optional<std::int64_t> mtime = std::nullopt) {
  fs::create_directories(p.parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  ::chmod(p.c_str(), mode);
  if (mtime) set_mtime(p, *mtime);
}

// A large file of `bytes` bytes of varied content (seeded), written fast.
inline void put_big_file(const fs::path& p, std::uint64_t bytes, unsigned seed) {
  fs::create_directories(p.parent_path());
  std::vector<char> block(1 << 20);
  std::uint64_t x = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (std::size_t i = 0; i < block.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(block.data() + i, &x, 8);
  }
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  for (std::uint64_t at = 0, n = 0; at < bytes; ++n) {
    const std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), bytes - at));
    block[0] = static_cast<char>(n);  // every MiB differs
    block[1] = static_cast<char>(n >> 8);
    out.write(block.data(), static_cast<std::streamsize>(len));
    at += len;
  }
}

inline std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::uint64_t fnv1a_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> buf(1 << 20);
  std::uint64_t h = 0xcbf29ce484222325ull;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      h ^= static_cast<std::uint8_t>(buf[static_cast<std::size_t>(i)]);
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

// One entry of a tree as the tests compare it.
struct Node {
  char type = '?';  // d, f, l, p (fifo), ?
  unsigned mode = 0;
  std::uint64_t size = 0;
  std::uint64_t hash = 0;  // file content
  std::string target;      // symlink
  std::int64_t mtime = 0;  // 0 when not compared
  bool operator==(const Node&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Node& n) {
  return os << n.type << " mode=" << std::oct << n.mode << std::dec << " size=" << n.size
            << " hash=" << n.hash << " target=" << n.target << " mtime=" << n.mtime;
}

// The tree below `root` by relative path ("a", "d/b"); mtimes of files
// and directories if `mtimes` (never of symlinks).
inline std::map<std::string, Node> snapshot(const fs::path& root, bool mtimes) {
  std::map<std::string, Node> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path p = it->path();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    Node n;
    n.mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      n.type = 'd';
    } else if (S_ISREG(st.st_mode)) {
      n.type = 'f';
      n.size = static_cast<std::uint64_t>(st.st_size);
      n.hash = fnv1a_file(p);
    } else if (S_ISLNK(st.st_mode)) {
      n.type = 'l';
      n.mode = 0;
      n.target = fs::read_symlink(p, ec).string();
    } else if (S_ISFIFO(st.st_mode)) {
      n.type = 'p';
    }
    if (mtimes && n.type != 'l') n.mtime = st.st_mtim.tv_sec;
    out[p.lexically_relative(root).string()] = n;
  }
  return out;
}

// ---- the DMA

struct HistFile {
  std::string path;
  ndmp4_file_stat stat{};
  std::uint64_t node = 0, fh_info = 0;
};
struct HistDir {
  std::string name;
  std::uint64_t node = 0, parent = 0;
};
struct HistNode {
  ndmp4_file_stat stat{};
  std::uint64_t node = 0, fh_info = 0;
};
struct LogMsg {
  int type = 0;
  std::string text;
  bool associated = false;
  std::uint32_t sequence = 0;
};

// The posts of one operation, decoded.
struct Events {
  std::vector<std::uint32_t> codes;  // every post, in order
  std::vector<int> data_halted, mover_halted;
  std::vector<std::pair<int, std::uint64_t>> mover_paused;  // reason, seek position
  std::vector<std::pair<std::uint64_t, std::uint64_t>> data_reads;
  std::vector<HistFile> files;
  std::vector<HistDir> dirs;
  std::vector<HistNode> nodes;
  std::vector<LogMsg> logs;
  std::vector<std::pair<std::string, int>> log_files;
  std::vector<ndmp4_error> read_errors;  // MOVER_READ replies other than NO_ERR
  bool dma_closed_mover = false;         // the DMA sent MOVER_CLOSE after the data halted

  bool has_log(const std::string& part) const {
    for (const LogMsg& l : logs) {
      if (l.text.find(part) != std::string::npos) return true;
    }
    return false;
  }
  std::string all_logs() const {
    std::string s;
    for (const LogMsg& l : logs) s += "  [" + std::to_string(l.type) + "] " + l.text + "\n";
    return s;
  }
  const HistFile* file(const std::string& path) const {
    for (const HistFile& f : files) {
      if (f.path == path) return &f;
    }
    return nullptr;
  }

  // Decodes one post into the lists.
  void take(const ndmp::client::Message& m) {
    const std::uint32_t code = m.header.message_code;
    codes.push_back(code);
    switch (code) {
      case NDMP4_NOTIFY_DATA_HALTED: {
        ndmp::xdr::Decoded<ndmp4_notify_data_halted_post> p;
        EXPECT_TRUE(p.decode(m.body));
        data_halted.push_back(p->reason);
        break;
      }
      case NDMP4_NOTIFY_MOVER_HALTED: {
        ndmp::xdr::Decoded<ndmp4_notify_mover_halted_post> p;
        EXPECT_TRUE(p.decode(m.body));
        mover_halted.push_back(p->reason);
        break;
      }
      case NDMP4_NOTIFY_MOVER_PAUSED: {
        ndmp::xdr::Decoded<ndmp4_notify_mover_paused_post> p;
        EXPECT_TRUE(p.decode(m.body));
        mover_paused.emplace_back(p->reason, p->seek_position);
        break;
      }
      case NDMP4_NOTIFY_DATA_READ: {
        ndmp::xdr::Decoded<ndmp4_notify_data_read_post> p;
        EXPECT_TRUE(p.decode(m.body));
        data_reads.emplace_back(p->offset, p->length);
        break;
      }
      case NDMP4_FH_ADD_FILE: {
        ndmp::xdr::Decoded<ndmp4_fh_add_file_post> p;
        EXPECT_TRUE(p.decode(m.body));
        for (u_int i = 0; i < p->files.files_len; ++i) {
          const ndmp4_file& f = p->files.files_val[i];
          HistFile h;
          EXPECT_EQ(f.names.names_len, 1u);
          EXPECT_EQ(f.stats.stats_len, 1u);
          if (f.names.names_len >= 1 && f.names.names_val[0].fs_type == NDMP4_FS_UNIX) {
            h.path = f.names.names_val[0].ndmp4_file_name_u.unix_name;
          }
          if (f.stats.stats_len >= 1) h.stat = f.stats.stats_val[0];
          h.node = f.node;
          h.fh_info = f.fh_info;
          files.push_back(std::move(h));
        }
        break;
      }
      case NDMP4_FH_ADD_DIR: {
        ndmp::xdr::Decoded<ndmp4_fh_add_dir_post> p;
        EXPECT_TRUE(p.decode(m.body));
        for (u_int i = 0; i < p->dirs.dirs_len; ++i) {
          const ndmp4_dir& d = p->dirs.dirs_val[i];
          HistDir h;
          EXPECT_EQ(d.names.names_len, 1u);
          if (d.names.names_len >= 1 && d.names.names_val[0].fs_type == NDMP4_FS_UNIX) {
            h.name = d.names.names_val[0].ndmp4_file_name_u.unix_name;
          }
          h.node = d.node;
          h.parent = d.parent;
          dirs.push_back(std::move(h));
        }
        break;
      }
      case NDMP4_FH_ADD_NODE: {
        ndmp::xdr::Decoded<ndmp4_fh_add_node_post> p;
        EXPECT_TRUE(p.decode(m.body));
        for (u_int i = 0; i < p->nodes.nodes_len; ++i) {
          const ndmp4_node& n = p->nodes.nodes_val[i];
          HistNode h;
          EXPECT_EQ(n.stats.stats_len, 1u);
          if (n.stats.stats_len >= 1) h.stat = n.stats.stats_val[0];
          h.node = n.node;
          h.fh_info = n.fh_info;
          nodes.push_back(h);
        }
        break;
      }
      case NDMP4_LOG_MESSAGE: {
        ndmp::xdr::Decoded<ndmp4_log_message_post> p;
        EXPECT_TRUE(p.decode(m.body));
        logs.push_back({p->log_type, p->entry ? p->entry : "",
                        p->associated_message_valid == NDMP4_HAS_ASSOCIATED_MESSAGE,
                        p->associated_message_sequence});
        break;
      }
      case NDMP4_LOG_FILE: {
        ndmp::xdr::Decoded<ndmp4_log_file_post> p;
        EXPECT_TRUE(p.decode(m.body));
        log_files.emplace_back(p->name ? p->name : "", p->recovery_status);
        break;
      }
      default:
        break;
    }
  }
};

// A DMA with the DATA and MOVER calls.
class DataDma : public Dma {
 public:
  using Dma::Dma;

  // ---- DATA
  ndmp::client::Response<ndmp4_data_get_state_reply> data_state() {
    return c.call<NDMP4_DATA_GET_STATE>();
  }
  ndmp::client::Response<ndmp4_data_listen_reply> data_listen(ndmp4_addr_type type) {
    ndmp4_data_listen_request r{type};
    return c.call<NDMP4_DATA_LISTEN>(r);
  }
  ndmp4_error data_connect_addr(const ndmp4_addr& a) {
    ndmp4_data_connect_request r{};
    r.addr = a;
    return c.call<NDMP4_DATA_CONNECT>(r).error();
  }
  ndmp4_error data_connect_local() {
    ndmp4_addr a{};
    a.addr_type = NDMP4_ADDR_LOCAL;
    return data_connect_addr(a);
  }
  ndmp4_error data_connect_tcp(std::uint32_t ip, std::uint16_t port) {
    ndmp4_tcp_addr t{};
    t.ip_addr = ip;
    t.port = port;
    ndmp4_addr a{};
    a.addr_type = NDMP4_ADDR_TCP;
    a.ndmp4_addr_u.tcp_addr.tcp_addr_len = 1;
    a.ndmp4_addr_u.tcp_addr.tcp_addr_val = &t;
    return data_connect_addr(a);
  }
  // START_BACKUP; returns the error and the request's sequence number is
  // not known to the client: LOG_MESSAGE's association is checked loosely.
  ndmp4_error start_backup(const EnvList& env, const std::string& butype = "tar") {
    std::vector<ndmp4_pval> pv = pvals(env);
    ndmp4_data_start_backup_request r{};
    r.butype_name = const_cast<char*>(butype.c_str());
    r.env.env_len = static_cast<u_int>(pv.size());
    r.env.env_val = pv.data();
    return c.call<NDMP4_DATA_START_BACKUP>(r).error();
  }
  struct Name {
    std::string original, destination;
    std::uint64_t fh_info = kInf;
  };
  ndmp4_error start_recover(const EnvList& env, const std::vector<Name>& names,
                            const std::string& butype = "tar") {
    return recover_request(env, names, butype, false);
  }
  // DATA_START_RECOVER_FILEHIST: the image's file history, nothing written.
  ndmp4_error start_recover_filehist(const EnvList& env, const std::string& butype = "tar") {
    return recover_request(env, {}, butype, true);
  }
  ndmp4_error recover_request(const EnvList& env, const std::vector<Name>& names,
                              const std::string& butype, bool filehist) {
    std::vector<ndmp4_pval> pv = pvals(env);
    std::vector<ndmp4_name> nl(names.size());
    static char empty[] = "";
    for (std::size_t i = 0; i < names.size(); ++i) {
      nl[i].original_path = const_cast<char*>(names[i].original.c_str());
      nl[i].destination_path = const_cast<char*>(names[i].destination.c_str());
      nl[i].name = empty;
      nl[i].other_name = empty;
      nl[i].node = kInf;
      nl[i].fh_info = names[i].fh_info;
    }
    ndmp4_data_start_recover_request r{};
    r.butype_name = const_cast<char*>(butype.c_str());
    r.env.env_len = static_cast<u_int>(pv.size());
    r.env.env_val = pv.data();
    r.nlist.nlist_len = static_cast<u_int>(nl.size());
    r.nlist.nlist_val = nl.data();
    return filehist ? c.call<NDMP4_DATA_START_RECOVER_FILEHIST>(r).error()
                    : c.call<NDMP4_DATA_START_RECOVER>(r).error();
  }
  ndmp4_error data_abort() { return c.call<NDMP4_DATA_ABORT>().error(); }
  ndmp4_error data_stop() { return c.call<NDMP4_DATA_STOP>().error(); }
  std::pair<ndmp4_error, std::map<std::string, std::string>> data_env() {
    const auto rep = c.call<NDMP4_DATA_GET_ENV>();
    std::map<std::string, std::string> env;
    if (rep.error() == NDMP4_NO_ERR) {
      for (u_int i = 0; i < rep->env.env_len; ++i) {
        const ndmp4_pval& p = rep->env.env_val[i];
        env[p.name ? p.name : ""] = p.value ? p.value : "";
      }
    }
    return {rep.error(), env};
  }

  // Loads the cartridge of `slot` into drive 0 and opens it, rewound.
  void load(std::uint16_t slot, ndmp4_tape_open_mode mode) {
    ASSERT_EQ(move(slot, kDrive0), NDMP4_NO_ERR);
    ASSERT_EQ(open("vtl0.drive0", mode), NDMP4_NO_ERR);
    ASSERT_EQ(mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  }
  // Closes drive 0 and puts its cartridge back into `slot`.
  void unload(std::uint16_t slot) {
    ASSERT_EQ(close(), NDMP4_NO_ERR);
    ASSERT_EQ(move(kDrive0, slot), NDMP4_NO_ERR);
  }

  // How the DMA answers what the data server and the mover ask for.
  struct Answer {
    bool reads = false;             // NOTIFY_DATA_READ -> MOVER_READ
    bool close_at_end = false;      // PAUSED EOF / EOM -> MOVER_CLOSE
    bool close_after_data = false;  // data halted, mover still busy -> MOVER_CLOSE
    std::uint32_t record_size = 0;  // PAUSED SEEK -> window from the record holding it
  };

  // Takes posts into `ev` until both the data server and the mover have
  // halted (or only the data server, with `mover` false), answering as
  // `how` says; false if `limit` passed first.
  bool run(Events& ev, const Answer& how, std::chrono::seconds limit = 60s, bool mover = true) {
    const auto until = std::chrono::steady_clock::now() + limit;
    std::optional<std::chrono::steady_clock::time_point> data_done;
    while (std::chrono::steady_clock::now() < until) {
      if (!ev.data_halted.empty() && (!mover || !ev.mover_halted.empty())) return true;
      if (data_done && how.close_after_data && !ev.dma_closed_mover &&
          std::chrono::steady_clock::now() > *data_done + 3s) {
        const auto st = this->mover();
        if (st->state == NDMP4_MOVER_STATE_ACTIVE || st->state == NDMP4_MOVER_STATE_PAUSED) {
          ev.dma_closed_mover = true;
          EXPECT_EQ(mover_close(), NDMP4_NO_ERR);
        }
      }
      auto m = c.next_post(200ms);
      if (!m) continue;
      ev.take(*m);
      const std::uint32_t code = m->header.message_code;
      if (code == NDMP4_NOTIFY_DATA_HALTED && !data_done) {
        data_done = std::chrono::steady_clock::now();
      }
      if (code == NDMP4_NOTIFY_DATA_READ && how.reads) {
        const auto [offset, length] = ev.data_reads.back();
        ndmp4_error e = NDMP4_READ_IN_PROGRESS_ERR;
        for (int i = 0; i < 300 && e == NDMP4_READ_IN_PROGRESS_ERR; ++i) {
          e = read_range(offset, length);
          if (e == NDMP4_READ_IN_PROGRESS_ERR) std::this_thread::sleep_for(10ms);
        }
        if (e != NDMP4_NO_ERR) ev.read_errors.push_back(e);
      }
      if (code == NDMP4_NOTIFY_MOVER_PAUSED) {
        const auto [reason, seek] = ev.mover_paused.back();
        if ((reason == NDMP4_MOVER_PAUSE_EOF || reason == NDMP4_MOVER_PAUSE_EOM) &&
            how.close_at_end) {
          // The data server may have ended the connection meanwhile (the
          // mover halted on its own): then CLOSE finds it HALTED.
          const ndmp4_error e = mover_close();
          if (e != NDMP4_NO_ERR) {
            EXPECT_EQ(e, NDMP4_ILLEGAL_STATE_ERR);
            EXPECT_EQ(this->mover()->state, NDMP4_MOVER_STATE_HALTED);
          }
        } else if (reason == NDMP4_MOVER_PAUSE_SEEK && how.record_size != 0) {
          // The tape is one cartridge: the mover positions the head itself
          // once the window holds the byte.
          const std::uint64_t from = seek / how.record_size * how.record_size;
          EXPECT_EQ(window(from, kInf - from), NDMP4_NO_ERR);
          EXPECT_EQ(cont(), NDMP4_NO_ERR);
        }
      }
    }
    return !ev.data_halted.empty() && (!mover || !ev.mover_halted.empty());
  }

  // A backup over LOCAL onto the open tape (positioned where the image
  // goes): record size, window (0, infinity), MOVER_LISTEN LOCAL,
  // DATA_CONNECT LOCAL, START_BACKUP, posts until both halted; then the
  // states, the environment, and DATA_STOP / MOVER_STOP.
  struct Outcome {
    Events ev;
    ndmp4_error start = NDMP4_NO_ERR;
    int data_halt = -1, mover_halt = -1;
    std::uint64_t data_bytes = 0, mover_bytes = 0;
    std::uint32_t record_num = 0;
    std::map<std::string, std::string> env;
  };
  void local_backup(const EnvList& env, std::uint32_t record, Outcome& out,
                    std::chrono::seconds limit = 60s) {
    ASSERT_EQ(record_size(record), NDMP4_NO_ERR);
    ASSERT_EQ(window(0, kInf), NDMP4_NO_ERR);
    ASSERT_EQ(listen(NDMP4_MOVER_MODE_READ, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
    ASSERT_EQ(data_connect_local(), NDMP4_NO_ERR);
    out.start = start_backup(env);
    ASSERT_EQ(out.start, NDMP4_NO_ERR) << out.ev.all_logs();
    ASSERT_TRUE(run(out.ev, Answer{}, limit)) << "no halt within the limit";
    finish(out, true);
  }
  // A recovery over LOCAL from the open tape (positioned at the image):
  // answers NOTIFY_DATA_READ with MOVER_READ, closes the mover at EOF.
  void local_recover(const EnvList& env, const std::vector<Name>& names, std::uint32_t record,
                     Outcome& out, std::chrono::seconds limit = 60s, bool filehist = false) {
    ASSERT_EQ(record_size(record), NDMP4_NO_ERR);
    ASSERT_EQ(window(0, kInf), NDMP4_NO_ERR);
    ASSERT_EQ(listen(NDMP4_MOVER_MODE_WRITE, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
    ASSERT_EQ(data_connect_local(), NDMP4_NO_ERR);
    out.start = filehist ? start_recover_filehist(env) : start_recover(env, names);
    ASSERT_EQ(out.start, NDMP4_NO_ERR);
    Answer how;
    how.reads = how.close_at_end = how.close_after_data = true;
    how.record_size = record;
    ASSERT_TRUE(run(out.ev, how, limit)) << "no halt within the limit";
    finish(out, false);
  }
  // The states after both halted; DATA_STOP, MOVER_STOP.
  void finish(Outcome& out, bool backup) {
    const auto ds = data_state();
    ASSERT_EQ(ds.error(), NDMP4_NO_ERR);
    EXPECT_EQ(ds->state, NDMP4_DATA_STATE_HALTED);
    out.data_halt = ds->halt_reason;
    out.data_bytes = ds->bytes_processed;
    const auto ms = mover();
    ASSERT_EQ(ms.error(), NDMP4_NO_ERR);
    EXPECT_EQ(ms->state, NDMP4_MOVER_STATE_HALTED);
    out.mover_halt = ms->halt_reason;
    out.mover_bytes = ms->bytes_moved;
    out.record_num = ms->record_num;
    if (backup) {
      auto [e, env] = data_env();
      EXPECT_EQ(e, NDMP4_NO_ERR);
      out.env = env;
    }
    EXPECT_EQ(data_stop(), NDMP4_NO_ERR);
    EXPECT_EQ(stop(), NDMP4_NO_ERR);
  }

 private:
  static std::vector<ndmp4_pval> pvals(const EnvList& env) {
    std::vector<ndmp4_pval> pv(env.size());
    for (std::size_t i = 0; i < env.size(); ++i) {
      pv[i].name = const_cast<char*>(env[i].first.c_str());
      pv[i].value = const_cast<char*>(env[i].second.c_str());
    }
    return pv;
  }
};

// ---- tar images made by hand (for hostile input)

// One ustar header block for `name` (type '0' file, '2' symlink, '5' dir).
inline std::vector<std::uint8_t> ustar_header(const std::string& name, char type,
                                              std::uint64_t size, const std::string& link = {},
                                              unsigned mode = 0644) {
  std::vector<std::uint8_t> h(512, 0);
  auto put = [&h](std::size_t at, std::size_t len, const std::string& s) {
    std::memcpy(h.data() + at, s.data(), std::min(len, s.size()));
  };
  auto octal = [&h](std::size_t at, std::size_t len, std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(len - 1),
                  static_cast<unsigned long long>(v));
    std::memcpy(h.data() + at, buf, len - 1);
  };
  put(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1700000000);
  std::memset(h.data() + 148, ' ', 8);
  h[156] = static_cast<std::uint8_t>(type);
  put(157, 100, link);
  put(257, 6, std::string("ustar\0", 6));
  put(263, 2, "00");
  unsigned sum = 0;
  for (std::uint8_t b : h) sum += b;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06o", sum);
  std::memcpy(h.data() + 148, buf, 7);  // six digits, NUL, the space stays
  return h;
}

// A tar header block: magic "ustar" and a matching checksum.
inline bool looks_like_tar_header(const Bytes& b) {
  if (b.size() < 512) return false;
  if (std::memcmp(b.data() + 257, "ustar", 5) != 0) return false;
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : b[i];
  const std::string field(reinterpret_cast<const char*>(b.data() + 148), 8);
  return std::strtoul(field.c_str(), nullptr, 8) == sum;
}

}  // namespace ndmpd::itest
