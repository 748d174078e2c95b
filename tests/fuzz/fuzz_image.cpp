// Fuzz target: the tar recovery engine reading a backup image, the
// decoder of the data server's least trusted input (a tape can hold
// anything).  The first byte picks the recovery: everything, the table of
// contents (file history, nothing written), or one name by direct access
// (its fh_info from the next two bytes); the rest is the image.  Beyond
// "no crash, no sanitizer report": nothing may appear outside the
// destination, and the engine must end (its Source runs dry).  A violated
// invariant aborts, which libFuzzer reports as a crash.
//
// Files are really written: into a scratch directory made once per
// process, emptied after every input.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "ndmpd/data/tar_recover.h"

namespace {

namespace fs = std::filesystem;
using namespace ndmpd::data;

void check(bool ok) {
  if (!ok) std::abort();
}

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::span<const std::uint8_t> image) : image_(image) {}
  bool request(std::uint64_t offset, std::uint64_t length) override {
    if (++requests_ > 100000) return false;  // an engine that never stops asking
    at_ = std::min<std::uint64_t>(offset, image_.size());
    left_ = length;
    return true;
  }
  std::ptrdiff_t read(std::span<std::uint8_t> buffer) override {
    const std::uint64_t n = std::min<std::uint64_t>(
        {buffer.size(), image_.size() - at_, left_ == kUnknown ? ~0ull : left_});
    std::memcpy(buffer.data(), image_.data() + at_, n);
    at_ += n;
    if (left_ != kUnknown) left_ -= n;
    return static_cast<std::ptrdiff_t>(n);
  }

 private:
  std::span<const std::uint8_t> image_;
  std::uint64_t at_ = 0, left_ = 0;
  unsigned requests_ = 0;
};

class QuietReporter final : public Reporter {
 public:
  void add_file(const std::string& path, const FileStat&, std::uint64_t, std::uint64_t) override {
    check(!path.empty() && path[0] == '/');
  }
  void add_dir(const std::string&, std::uint64_t, std::uint64_t) override {}
  void add_node(const FileStat&, std::uint64_t, std::uint64_t) override {}
  void log(Level, const std::string&) override {}
  void file_result(const std::string&, int) override {}
  void progress(std::uint64_t, std::uint64_t) override {}
};

struct Scratch {
  Scratch() {
    char tmpl[] = "/tmp/ndmpd-fuzz-image-XXXXXX";
    check(mkdtemp(tmpl) != nullptr);
    top = tmpl;
    destination = top / "destination";
    outside = top / "outside";
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(top, ec);
  }
  void reset() {
    std::error_code ec;
    fs::remove_all(destination, ec);
    fs::create_directories(destination, ec);
    fs::create_directories(outside, ec);
  }
  // The scratch top holds just the two directories, and "outside" stays
  // empty.
  bool clean() const {
    std::error_code ec;
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(top, ec)) {
      (void)e;
      ++n;
    }
    return n == 2 && fs::is_empty(outside, ec);
  }
  fs::path top, destination, outside;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Scratch scratch;
  if (size < 1) return 0;
  const std::uint8_t mode = data[0] % 3;
  std::span<const std::uint8_t> image(data + 1, size - 1);
  RecoverJob job;
  job.destination = scratch.destination;
  if (mode == 1) {
    job.filehist_only = true;
    job.hist = (size > 1 && data[1] & 1) ? BackupJob::Hist::kDir : BackupJob::Hist::kFile;
  } else if (mode == 2 && image.size() >= 2) {
    job.direct = true;
    const std::uint64_t fh_info = (static_cast<std::uint64_t>(image[0]) << 8 | image[1]) * 512;
    image = image.subspan(2);
    job.names.push_back({"/a", "renamed", fh_info});
  }
  scratch.reset();
  MemorySource source(image);
  QuietReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(job, source, reporter, cancel);
  check(r.image_bytes <= image.size() + (1u << 20));
  check(scratch.clean());
  if (job.filehist_only) check(fs::is_empty(scratch.destination));
  return 0;
}
