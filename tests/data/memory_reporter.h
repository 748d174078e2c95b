// A Reporter that keeps what an engine reports (file history, log lines,
// LOG_FILE results, progress), for the data engines' tests.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ndmpd/data/engine.h"

namespace ndmpd::data::testing {

class MemoryReporter : public Reporter {
 public:
  struct File {
    std::string path;
    FileStat stat;
    std::uint64_t node, fh_info;
  };
  struct Dir {
    std::string name;
    std::uint64_t node, parent;
  };
  struct Node {
    FileStat stat;
    std::uint64_t node, fh_info;
  };

  void add_file(const std::string& path, const FileStat& stat, std::uint64_t node,
                std::uint64_t fh_info) override {
    files.push_back({path, stat, node, fh_info});
  }
  void add_dir(const std::string& name, std::uint64_t node, std::uint64_t parent) override {
    dirs.push_back({name, node, parent});
  }
  void add_node(const FileStat& stat, std::uint64_t node, std::uint64_t fh_info) override {
    nodes.push_back({stat, node, fh_info});
  }
  void log(Level level, const std::string& text) override { logs.emplace_back(level, text); }
  void file_result(const std::string& name, int errno_value) override {
    results[name] = errno_value;
    ++result_calls[name];
  }
  void progress(std::uint64_t image_bytes, std::uint64_t files_done) override {
    ++progress_calls;
    last_bytes = image_bytes;
    last_files = files_done;
  }

  // Whether a log line of `level` mentions `fragment`.
  bool logged(Level level, const std::string& fragment) const {
    for (const auto& [l, text] : logs) {
      if (l == level && text.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
  bool warned_about(const std::string& fragment) const { return logged(Level::kWarning, fragment); }
  std::string all_logs() const {
    std::string out;
    for (const auto& l : logs) out += l.second + "\n";
    return out;
  }
  std::vector<std::string> file_paths() const {
    std::vector<std::string> out;
    for (const File& f : files) out.push_back(f.path);
    return out;
  }

  std::vector<File> files;
  std::vector<Dir> dirs;
  std::vector<Node> nodes;
  std::vector<std::pair<Level, std::string>> logs;
  std::map<std::string, int> results;
  std::map<std::string, int> result_calls;
  std::uint64_t progress_calls = 0, last_bytes = 0, last_files = 0;
};

}  // namespace ndmpd::data::testing
