// The cartridge file: CRC-32C, writing and reading objects back, positioning,
// capacity, write protection, and recovery from torn tails, damaged payloads
// and damaged side indexes.  The tests know the documented file format
// (object = 32-byte header + payload + 8-byte trailer, first object at 4096)
// to damage files precisely.

#include "scsi/emu/cartridge.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>

#include "scsi/crc32c.h"

namespace scsi::emu {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using Kind = Cartridge::Kind;
using WriteResult = Cartridge::WriteResult;

constexpr std::uint64_t kDataStart = 4096;
constexpr std::uint64_t kOverhead = 40;
constexpr std::uint64_t kInterval = Cartridge::kCheckpointInterval;

// ---- CRC-32C ----

Bytes ascii(const char* s) { return Bytes(s, s + std::char_traits<char>::length(s)); }

std::vector<std::pair<const char*, decltype(&crc32c_impl::extend_portable)>> implementations() {
  std::vector<std::pair<const char*, decltype(&crc32c_impl::extend_portable)>> v{
      {"portable", &crc32c_impl::extend_portable}};
  if (crc32c_impl::hardware_available()) v.emplace_back("sse4.2", &crc32c_impl::extend_hardware);
  if (crc32c_impl::vector_available()) v.emplace_back("vpclmulqdq", &crc32c_impl::extend_vector);
  return v;
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 appendix B.4, and the customary check value.
  Bytes zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  std::iota(up.begin(), up.end(), std::uint8_t{0});
  for (std::size_t i = 0; i < 32; ++i) down[i] = static_cast<std::uint8_t>(31 - i);
  const Bytes read_pdu = {0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                          0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  const std::vector<std::pair<Bytes, std::uint32_t>> vectors = {{ascii("123456789"), 0xE3069283u},
                                                                {zeros, 0x8A9136AAu},
                                                                {ones, 0x62A8AB43u},
                                                                {up, 0x46DD794Eu},
                                                                {down, 0x113FDB5Cu},
                                                                {read_pdu, 0xD9963A56u},
                                                                {Bytes{}, 0x00000000u}};
  for (const auto& [name, extend] : implementations()) {
    for (const auto& [data, expected] : vectors) {
      EXPECT_EQ(extend(0, data), expected) << name << " over " << data.size() << " bytes";
    }
  }
  EXPECT_EQ(crc32c(ascii("123456789")), 0xE3069283u);
}

TEST(Crc32c, ImplementationsAgreeAndExtendIsConcatenation) {
  std::mt19937_64 rng(7);
  Bytes data(200000);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  // Lengths around the interleaved strides (3 x 256, 3 x 8192) and the
  // folding thresholds (1024, then 256 at a time); offsets that misalign
  // the start.
  for (std::size_t length :
       {0u,    1u,    7u,    8u,    9u,    767u,   768u,   769u,   1023u,  1024u,   1025u,
        1279u, 1280u, 1281u, 1536u, 2047u, 24575u, 24576u, 24577u, 65536u, 100000u, 199990u}) {
    for (std::size_t offset : {0u, 1u, 5u}) {
      const std::span<const std::uint8_t> s(data.data() + offset, length);
      const std::uint32_t whole = crc32c(s);
      for (const auto& [name, extend] : implementations()) {
        EXPECT_EQ(extend(0, s), whole) << name << " " << length << "+" << offset;
        const std::size_t half = length / 3;
        EXPECT_EQ(extend(extend(0, s.first(half)), s.subspan(half)), whole)
            << name << " " << length << "+" << offset;
      }
    }
  }
}

TEST(Crc32c, ImplementationsAgreeOnEveryShortLength) {
  std::mt19937_64 rng(8);
  Bytes data(4200);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  for (std::size_t length = 0; length <= 4096; ++length) {
    const std::span<const std::uint8_t> s(data.data() + length % 61, length);
    const std::uint32_t seed = static_cast<std::uint32_t>(length * 2654435761u);
    const std::uint32_t expected = crc32c_impl::extend_portable(seed, s);
    for (const auto& [name, extend] : implementations()) {
      ASSERT_EQ(extend(seed, s), expected) << name << " " << length;
    }
  }
}

// ---- cartridge helpers ----

Bytes pattern(std::uint64_t seed, std::size_t size) {
  Bytes b(size);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& byte : b) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    byte = static_cast<std::uint8_t>(x);
  }
  return b;
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& p, std::span<const std::uint8_t> bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

// Writes `bytes` at `offset` and makes the file end after them, without
// truncating it to zero first (which makes ext4 flush it: slow, when a loop
// does it a thousand times).
void overwrite(const fs::path& p, std::uint64_t offset, std::span<const std::uint8_t> bytes) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << p;
  const auto n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  const int rc = ::ftruncate(fd, static_cast<off_t>(offset + bytes.size()));
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(bytes.size())) << p;
  ASSERT_EQ(rc, 0) << p;
}

// Makes the file `size` bytes long, the new bytes zeros (a hole): what a
// writer killed while the cartridge had a zero extent ahead of its objects
// leaves after them.
void grow_with_zeros(const fs::path& p, std::uint64_t size) {
  ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(size)), 0) << p;
}

// While a cartridge is open, its file may go on past the end of data with
// zeros to the next multiple of 2 MiB.
constexpr std::uint64_t kExtent = 2u << 20;

// A counter of this thread's I/O: "syscr" (read system calls), "rchar"
// (bytes read).
std::optional<std::uint64_t> proc_io(const char* field) {
  const int fd = ::open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[1024];
  const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buffer[n] = '\0';
  const char* at = std::strstr(buffer, field);
  if (at == nullptr) return std::nullopt;
  return std::strtoull(at + std::strlen(field) + 1, nullptr, 10);
}
std::optional<std::uint64_t> read_syscalls() { return proc_io("syscr"); }

// What a test wrote: a block's content, or a filemark (nullopt).
using Expected = std::vector<std::optional<Bytes>>;

class CartridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/cartridge_test.XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    path_ = dir_ / "A00001L8.vtape";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path index_path() const { return fs::path(path_.string() + ".index"); }

  std::unique_ptr<Cartridge> create(Cartridge::Attributes a = default_attributes()) {
    std::string error;
    auto c = Cartridge::create(path_, a, error);
    EXPECT_NE(c, nullptr) << error;
    if (c) c->set_zero_extents(zero_extents_);
    return c;
  }
  std::unique_ptr<Cartridge> open() {
    std::string error;
    auto c = Cartridge::open(path_, error);
    EXPECT_NE(c, nullptr) << error;
    if (c) c->set_zero_extents(zero_extents_);
    return c;
  }
  static Cartridge::Attributes default_attributes() {
    return {.barcode = "A00001L8",
            .capacity = 1ull << 40,
            .early_warning = (1ull << 40) - (1ull << 30),
            .write_protected = false};
  }

  // Appends `objects` at the position; checks every result.
  static void write_all(Cartridge& c, const Expected& objects) {
    std::string error;
    for (const auto& o : objects) {
      const auto r = o ? c.write_block(*o, error) : c.write_filemarks(1, error);
      ASSERT_EQ(r, WriteResult::kOk) << error;
    }
  }

  // Reads the whole cartridge from the beginning and compares.
  static void expect_contents(Cartridge& c, const Expected& objects) {
    ASSERT_EQ(c.end_of_data(), objects.size());
    ASSERT_TRUE(c.locate(0));
    Bytes buffer(Cartridge::kMaxBlock);
    std::uint64_t file = 0;
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < objects.size(); ++i) {
      ASSERT_EQ(c.position(), i);
      ASSERT_EQ(c.file_number(), file) << i;
      const auto o = c.peek();
      if (!objects[i]) {
        ASSERT_EQ(o.kind, Kind::kFilemark) << i;
        c.skip();
        ++file;
        continue;
      }
      ASSERT_EQ(o.kind, Kind::kBlock) << i;
      ASSERT_EQ(o.size, objects[i]->size()) << i;
      std::uint32_t size = 0;
      std::string error;
      ASSERT_TRUE(c.read_block(buffer, size, error)) << i << ": " << error;
      ASSERT_EQ(size, objects[i]->size()) << i;
      ASSERT_TRUE(std::equal(objects[i]->begin(), objects[i]->end(), buffer.begin())) << i;
      bytes += size;
    }
    EXPECT_EQ(c.peek().kind, Kind::kEndOfData);
    EXPECT_EQ(c.file_number(), file);
    EXPECT_EQ(c.filemarks(), file);
    EXPECT_EQ(c.bytes_used(), bytes);
  }

  // The file of an open cartridge whose end of data is at `end`: the
  // objects, then zeros up to a multiple of kExtent (or nothing).
  void expect_open_file_ends_at(std::uint64_t end) const {
    const Bytes file = read_file(path_);
    ASSERT_GE(file.size(), end);
    EXPECT_TRUE(file.size() == end || file.size() % kExtent == 0) << file.size();
    EXPECT_LT(file.size() - end, kExtent);
    EXPECT_TRUE(std::all_of(file.begin() + static_cast<std::ptrdiff_t>(end), file.end(),
                            [](std::uint8_t b) { return b == 0; }));
  }

  // The file offset of object n, as the format lays objects out.
  static std::uint64_t offset_of(const Expected& objects, std::size_t n) {
    std::uint64_t offset = kDataStart;
    for (std::size_t i = 0; i < n; ++i) offset += kOverhead + (objects[i] ? objects[i]->size() : 0);
    return offset;
  }

  fs::path dir_;
  fs::path path_;
  // The cartridges of these tests grow in zero extents (the option the
  // format has to survive); WithoutZeroExtents... checks the default.
  bool zero_extents_ = true;
};

Expected small_objects(std::size_t count, std::uint64_t seed) {
  Expected v;
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < count; ++i) {
    if (rng() % 11 == 0) {
      v.push_back(std::nullopt);
    } else {
      v.push_back(pattern(seed * 1000003 + i, 1 + rng() % 300));
    }
  }
  return v;
}

// ---- creating and opening ----

TEST_F(CartridgeTest, CreateRefusesAnExistingNameAndBadAttributes) {
  ASSERT_NE(create(), nullptr);
  std::string error;
  EXPECT_EQ(Cartridge::create(path_, default_attributes(), error), nullptr);
  EXPECT_NE(error.find("exists"), std::string::npos) << error;

  auto a = default_attributes();
  a.barcode = std::string(33, 'X');
  EXPECT_EQ(Cartridge::create(dir_ / "b1", a, error), nullptr);
  a = default_attributes();
  a.early_warning = a.capacity + 1;
  EXPECT_EQ(Cartridge::create(dir_ / "b2", a, error), nullptr);
  a.early_warning = 0;
  EXPECT_EQ(Cartridge::create(dir_ / "b3", a, error), nullptr);
  a = default_attributes();
  a.capacity = 0;
  EXPECT_EQ(Cartridge::create(dir_ / "b4", a, error), nullptr);
  EXPECT_FALSE(fs::exists(dir_ / "b1") || fs::exists(dir_ / "b2") || fs::exists(dir_ / "b3") ||
               fs::exists(dir_ / "b4"));

  EXPECT_EQ(Cartridge::open(dir_ / "absent", error), nullptr);
  const Bytes junk = pattern(3, 8192);
  write_file(dir_ / "junk", junk);
  EXPECT_EQ(Cartridge::open(dir_ / "junk", error), nullptr);
  EXPECT_NE(error.find("not a cartridge"), std::string::npos) << error;
}

TEST_F(CartridgeTest, AttributesAndWriteProtectionPersist) {
  Cartridge::Attributes a{.barcode = "CLN001L8",
                          .capacity = 123456789,
                          .early_warning = 100000000,
                          .write_protected = false};
  {
    auto c = create(a);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->end_of_data(), 0u);
    EXPECT_TRUE(c->at_beginning());
    EXPECT_EQ(c->peek().kind, Kind::kEndOfData);
    write_all(*c, {pattern(1, 10)});
    EXPECT_TRUE(c->set_write_protected(true));
  }
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->attributes().barcode, "CLN001L8");
    EXPECT_EQ(c->attributes().capacity, 123456789u);
    EXPECT_EQ(c->attributes().early_warning, 100000000u);
    EXPECT_TRUE(c->attributes().write_protected);
    const auto size_before = fs::file_size(path_);
    std::string error;
    ASSERT_TRUE(c->locate(0));
    EXPECT_EQ(c->write_block(pattern(2, 10), error), WriteResult::kWriteProtected);
    EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kWriteProtected);
    EXPECT_FALSE(c->erase(error));
    EXPECT_EQ(c->end_of_data(), 1u);
    EXPECT_EQ(fs::file_size(path_), size_before);
    // Flipped back and forth: each change goes to the other superblock slot.
    EXPECT_TRUE(c->set_write_protected(false));
    EXPECT_TRUE(c->set_write_protected(true));
    EXPECT_TRUE(c->set_write_protected(false));
  }
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->attributes().write_protected);
  EXPECT_EQ(c->attributes().barcode, "CLN001L8");
  expect_contents(*c, {pattern(1, 10)});
}

TEST_F(CartridgeTest, ATornSuperblockWriteLeavesThePreviousSlotInForce) {
  {
    auto c = create();
    ASSERT_TRUE(c->set_write_protected(true));  // generation 2: slot 0
  }
  // Damage slot 0, as a torn write of the next change would.
  Bytes file = read_file(path_);
  file[100] ^= 0xFF;
  file[20] ^= 0x01;
  write_file(path_, file);
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->attributes().write_protected);  // slot 1, generation 1
  EXPECT_EQ(c->attributes().barcode, "A00001L8");
}

TEST_F(CartridgeTest, OneOpenAtATime) {
  auto c = create();
  ASSERT_NE(c, nullptr);
  std::string error;
  EXPECT_EQ(Cartridge::open(path_, error), nullptr);
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
  c.reset();
  EXPECT_NE(open(), nullptr);
}

// ---- writing and reading ----

TEST_F(CartridgeTest, BlocksOfEverySizeAndFilemarksReadBackExactly) {
  Expected objects;
  std::uint64_t seed = 1;
  for (std::size_t size : {1u, 2u, 3u, 31u, 32u, 33u, 100u, 4095u, 4096u, 4097u, 65536u, 262144u,
                           262145u, 1u << 20, 16u << 20}) {
    objects.push_back(pattern(seed++, size));
    if (seed % 3 == 0) objects.push_back(std::nullopt);
  }
  objects.push_back(std::nullopt);
  objects.push_back(std::nullopt);
  objects.push_back(pattern(seed++, 7));
  {
    auto c = create();
    write_all(*c, objects);
    std::string error;
    EXPECT_TRUE(c->flush(error)) << error;
    expect_contents(*c, objects);
  }
  auto c = open();
  expect_contents(*c, objects);
  EXPECT_EQ(fs::file_size(path_), offset_of(objects, objects.size()));
}

TEST_F(CartridgeTest, BlocksOutsideTheSizeRangeAreRefused) {
  auto c = create();
  std::string error;
  EXPECT_EQ(c->write_block({}, error), WriteResult::kIoError);
  const Bytes big(Cartridge::kMaxBlock + 1, 0x55);
  EXPECT_EQ(c->write_block(big, error), WriteResult::kIoError);
  EXPECT_EQ(c->end_of_data(), 0u);
  EXPECT_EQ(fs::file_size(path_), kDataStart);
}

TEST_F(CartridgeTest, WriteFilemarksCountsAndZeroFlushes) {
  auto c = create();
  std::string error;
  write_all(*c, {pattern(1, 10)});
  EXPECT_EQ(c->write_filemarks(0, error), WriteResult::kOk);
  EXPECT_EQ(c->end_of_data(), 1u);
  // More than one write batch.
  EXPECT_EQ(c->write_filemarks(2500, error), WriteResult::kOk) << error;
  write_all(*c, {pattern(2, 10)});
  EXPECT_EQ(c->filemarks(), 2500u);
  Expected objects{pattern(1, 10)};
  for (int i = 0; i < 2500; ++i) objects.push_back(std::nullopt);
  objects.push_back(pattern(2, 10));
  expect_contents(*c, objects);
  c.reset();
  c = open();
  expect_contents(*c, objects);
  EXPECT_EQ(c->next_filemark(0), 1u);
  EXPECT_EQ(c->previous_filemark(2502), 2500u);
}

TEST_F(CartridgeTest, WithoutZeroExtentsTheFileEndsAtTheObjects) {
  zero_extents_ = false;  // the default
  Expected objects;
  for (std::uint64_t i = 0; i < 8; ++i) objects.push_back(pattern(i, 300000));
  objects.push_back(std::nullopt);
  objects.push_back(pattern(8, 139));
  auto c = create();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    write_all(*c, {objects[i]});
    EXPECT_EQ(fs::file_size(path_), offset_of(objects, i + 1)) << i;
  }
  c.reset();
  c = open();
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, ZerosAheadOfTheObjectsGoWhenClosedAndAfterACrash) {
  // Blocks that cross extent boundaries, one larger than an extent, a
  // filemark, and a small block.
  Expected objects;
  for (std::uint64_t i = 0; i < 10; ++i) objects.push_back(pattern(i, 300000));
  objects.push_back(std::nullopt);
  objects.push_back(pattern(10, 5u << 20));
  objects.push_back(pattern(11, 139));
  auto c = create();
  EXPECT_EQ(fs::file_size(path_), kDataStart);
  for (std::size_t i = 0; i < objects.size(); ++i) {
    write_all(*c, {objects[i]});
    expect_open_file_ends_at(offset_of(objects, i + 1));
    EXPECT_EQ(fs::file_size(path_) % kExtent, 0u) << i;
  }
  const std::uint64_t end = offset_of(objects, objects.size());
  EXPECT_GT(fs::file_size(path_), end);

  // What kill -9 leaves: the file with its zeros, and the index.
  const fs::path copy = dir_ / "COPY01L8.vtape";
  fs::copy_file(path_, copy);
  fs::copy_file(index_path(), fs::path(copy.string() + ".index"));
  {
    std::string error;
    auto recovered = Cartridge::open(copy, error);
    ASSERT_NE(recovered, nullptr) << error;
    EXPECT_EQ(fs::file_size(copy), end);
    expect_contents(*recovered, objects);
  }

  // Reading leaves the file alone; closing cuts it back to the end of data.
  const auto size_open = fs::file_size(path_);
  expect_contents(*c, objects);
  EXPECT_EQ(fs::file_size(path_), size_open);
  c.reset();
  EXPECT_EQ(fs::file_size(path_), end);

  // Writing in the middle cuts, then grows the file again.
  c = open();
  ASSERT_TRUE(c->locate(3));
  write_all(*c, {pattern(20, 1000)});
  objects.resize(3);
  objects.push_back(pattern(20, 1000));
  expect_open_file_ends_at(offset_of(objects, objects.size()));
  EXPECT_EQ(fs::file_size(path_), kExtent);
  expect_contents(*c, objects);
  c.reset();
  EXPECT_EQ(fs::file_size(path_), offset_of(objects, objects.size()));
  c = open();
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, AFileSystemThatRefusesTheZerosStillTakesTheObjects) {
  // A file size limit of 1 MiB (EFBIG past it) stands for a full file
  // system: the zeros up to 2 MiB cannot be written, blocks below 1 MiB can.
  auto c = create();
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = saved;
  limited.rlim_cur = 1u << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string error;
  const Bytes a = pattern(1, 100000), b = pattern(2, 2000), big = pattern(3, 1u << 20);
  const WriteResult ra = c->write_block(a, error);
  const std::uint64_t size_a = fs::file_size(path_);
  const WriteResult rb = c->write_filemarks(1, error);
  const WriteResult rc = c->write_block(b, error);
  const std::uint64_t size_c = fs::file_size(path_);
  const WriteResult rbig = c->write_block(big, error);  // past the limit
  const std::uint64_t size_big = fs::file_size(path_);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  EXPECT_EQ(ra, WriteResult::kOk);
  EXPECT_EQ(size_a, kDataStart + kOverhead + a.size());  // no zeros left behind
  EXPECT_EQ(rb, WriteResult::kOk);
  EXPECT_EQ(rc, WriteResult::kOk);
  const Expected objects{a, std::nullopt, b};
  EXPECT_EQ(size_c, offset_of(objects, 3));
  EXPECT_EQ(rbig, WriteResult::kIoError);
  EXPECT_EQ(size_big, offset_of(objects, 3));
  expect_contents(*c, objects);
  c.reset();
  c = open();
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, ReadIntoASmallerBufferReturnsTheFullSize) {
  auto c = create();
  const Bytes a = pattern(1, 1000);
  const Bytes b = pattern(2, 1 << 20);
  write_all(*c, {a, b, a});
  ASSERT_TRUE(c->locate(0));
  Bytes buffer(10, 0xEE);
  std::uint32_t size = 0;
  std::string error;
  ASSERT_TRUE(c->read_block(buffer, size, error)) << error;
  EXPECT_EQ(size, 1000u);
  EXPECT_TRUE(std::equal(buffer.begin(), buffer.end(), a.begin()));
  EXPECT_EQ(c->position(), 1u);
  const Bytes kept = buffer;
  ASSERT_TRUE(c->read_block(std::span<std::uint8_t>(buffer.data(), 0), size, error)) << error;
  EXPECT_EQ(size, 1u << 20);
  EXPECT_EQ(buffer, kept);
  EXPECT_EQ(c->position(), 2u);
  Bytes big(2000, 0);
  ASSERT_TRUE(c->read_block(big, size, error)) << error;
  EXPECT_EQ(size, 1000u);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), big.begin()));
  EXPECT_EQ(c->peek().kind, Kind::kEndOfData);
  EXPECT_FALSE(c->read_block(big, size, error));
}

// ---- positioning ----

TEST_F(CartridgeTest, LocateSkipAndFilemarkQueries) {
  const Expected objects = small_objects(3000, 5);
  auto c = create();
  write_all(*c, objects);
  std::vector<std::uint64_t> marks;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (!objects[i]) marks.push_back(i);
  }
  ASSERT_GT(marks.size(), 100u);
  EXPECT_EQ(c->filemarks(), marks.size());

  std::mt19937_64 rng(11);
  Bytes buffer(1000);
  for (int round = 0; round < 3000; ++round) {
    const std::uint64_t n = rng() % (objects.size() + 1);
    ASSERT_TRUE(c->locate(n)) << n;
    ASSERT_EQ(c->position(), n);
    const auto files =
        static_cast<std::uint64_t>(std::lower_bound(marks.begin(), marks.end(), n) - marks.begin());
    ASSERT_EQ(c->file_number(), files) << n;
    const auto o = c->peek();
    if (n == objects.size()) {
      ASSERT_EQ(o.kind, Kind::kEndOfData);
      continue;
    }
    if (!objects[n]) {
      ASSERT_EQ(o.kind, Kind::kFilemark) << n;
      c->skip();
      ASSERT_EQ(c->position(), n + 1);
      ASSERT_EQ(c->file_number(), files + 1);
      continue;
    }
    ASSERT_EQ(o.kind, Kind::kBlock) << n;
    ASSERT_EQ(o.size, objects[n]->size()) << n;
    if (round % 2 == 0) {
      std::uint32_t size = 0;
      std::string error;
      ASSERT_TRUE(c->read_block(buffer, size, error)) << error;
      ASSERT_TRUE(std::equal(objects[n]->begin(), objects[n]->end(), buffer.begin())) << n;
    } else {
      c->skip();
    }
    ASSERT_EQ(c->position(), n + 1);
  }
  const std::uint64_t position = c->position();
  EXPECT_FALSE(c->locate(objects.size() + 1));
  EXPECT_EQ(c->position(), position);

  for (std::uint64_t from = 0; from <= objects.size() + 1; ++from) {
    const auto next = std::lower_bound(marks.begin(), marks.end(), from);
    const auto expect_next =
        next == marks.end() ? std::nullopt : std::optional<std::uint64_t>(*next);
    const auto expect_previous =
        next == marks.begin() ? std::nullopt : std::optional<std::uint64_t>(*std::prev(next));
    ASSERT_EQ(c->next_filemark(from), expect_next) << from;
    ASSERT_EQ(c->previous_filemark(from), expect_previous) << from;
  }
}

TEST_F(CartridgeTest, SteppingBackwardReadsTwoRecordsPerObject) {
  const Expected objects = small_objects(1500, 6);
  auto c = create();
  write_all(*c, objects);
  const auto calibrate = read_syscalls();
  const auto calibrated = read_syscalls();
  for (std::uint64_t n = objects.size(); n-- > 0;) {
    const auto before = read_syscalls();
    ASSERT_TRUE(c->locate(n));
    const auto after = read_syscalls();
    if (calibrate && calibrated) {
      // A trailer and the header it leads to.
      EXPECT_LE(*after - *before - (*calibrated - *calibrate), 2u) << n;
    }
    ASSERT_EQ(c->peek().kind, objects[n] ? Kind::kBlock : Kind::kFilemark) << n;
    if (objects[n]) {
      ASSERT_EQ(c->peek().size, objects[n]->size()) << n;
    }
  }
}

TEST_F(CartridgeTest, LocateOnAMillionBlocksStepsOverFewHeaders) {
  constexpr std::uint64_t kBlocks = 1'000'000;
  {
    auto c = create();
    std::string error;
    for (std::uint64_t i = 0; i < kBlocks; ++i) {
      const std::uint8_t b = static_cast<std::uint8_t>(i * 7);
      ASSERT_EQ(c->write_block(std::span(&b, 1), error), WriteResult::kOk) << i << error;
    }
  }
  const auto opening = read_syscalls();
  auto c = open();
  ASSERT_NE(c, nullptr);
  const auto opened = read_syscalls();
  ASSERT_EQ(c->end_of_data(), kBlocks);
  EXPECT_EQ(c->bytes_used(), kBlocks);
  if (opening && opened) {
    // The index checkpoints' headers and the tail after the last one, not
    // a scan of the cartridge.
    EXPECT_LT(*opened - *opening, kBlocks / kInterval + 3 * kInterval);
  }

  const auto calibrate = read_syscalls();
  const auto calibrated = read_syscalls();
  const std::uint64_t proc_reads = calibrate && calibrated ? *calibrated - *calibrate : 0;
  std::mt19937_64 rng(3);
  std::uint64_t worst = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t n = rng() % kBlocks;
    const auto before = read_syscalls();
    ASSERT_TRUE(c->locate(n));
    const auto after = read_syscalls();
    if (before && after) worst = std::max(worst, *after - *before - proc_reads);
    ASSERT_EQ(c->position(), n);
    std::uint8_t b = 0;
    std::uint32_t size = 0;
    std::string error;
    ASSERT_TRUE(c->read_block(std::span(&b, 1), size, error)) << error;
    ASSERT_EQ(size, 1u);
    ASSERT_EQ(b, static_cast<std::uint8_t>(n * 7)) << n;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (read_syscalls()) {
    EXPECT_LE(worst, kInterval);
    EXPECT_GT(worst, 0u);  // the counter does count
  }
  // A sanity bound only: generous enough for a sanitizer build.
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST_F(CartridgeTest, OpeningReadsLittleOfACartridgeOfLargeBlocks) {
  constexpr std::size_t kBlocks = 200;
  const Bytes block = pattern(1, 1 << 20);
  {
    auto c = create();
    write_all(*c, Expected(kBlocks, block));
  }
  const auto before = proc_io("rchar");
  auto c = open();
  const auto after = proc_io("rchar");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->end_of_data(), kBlocks);
  // Checkpoints every 32 MiB, so recovery verifies at most that much (not
  // the 200 MiB that 256 objects would be).
  if (before && after) {
    EXPECT_LT(*after - *before, 40u << 20);
  }
  ASSERT_TRUE(c->locate(kBlocks - 1));
  Bytes buffer(block.size());
  std::uint32_t size = 0;
  std::string error;
  ASSERT_TRUE(c->read_block(buffer, size, error)) << error;
  EXPECT_EQ(buffer, block);
}

// ---- overwriting and erasing ----

TEST_F(CartridgeTest, WritingInTheMiddleDiscardsWhatFollows) {
  Expected objects = small_objects(700, 8);
  auto c = create();
  write_all(*c, objects);
  ASSERT_TRUE(c->locate(300));
  std::string error;
  const Bytes replacement = pattern(99, 5000);
  ASSERT_EQ(c->write_block(replacement, error), WriteResult::kOk) << error;
  objects.resize(300);
  objects.push_back(replacement);
  EXPECT_EQ(c->end_of_data(), 301u);
  EXPECT_EQ(c->position(), 301u);
  expect_contents(*c, objects);
  expect_open_file_ends_at(offset_of(objects, objects.size()));

  // A filemark written in the middle does the same.
  ASSERT_TRUE(c->locate(100));
  ASSERT_EQ(c->write_filemarks(2, error), WriteResult::kOk) << error;
  objects.resize(100);
  objects.push_back(std::nullopt);
  objects.push_back(std::nullopt);
  expect_contents(*c, objects);
  EXPECT_EQ(c->next_filemark(101), 101u);
  EXPECT_EQ(c->next_filemark(102), std::nullopt);
  expect_open_file_ends_at(offset_of(objects, objects.size()));
  c.reset();
  EXPECT_EQ(fs::file_size(path_), offset_of(objects, objects.size()));
  c = open();
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, EraseDiscardsFromThePosition) {
  Expected objects = small_objects(600, 9);
  auto c = create();
  write_all(*c, objects);
  ASSERT_TRUE(c->locate(257));
  std::string error;
  ASSERT_TRUE(c->erase(error)) << error;
  objects.resize(257);
  EXPECT_EQ(c->end_of_data(), 257u);
  EXPECT_EQ(c->peek().kind, Kind::kEndOfData);
  c.reset();
  c = open();
  expect_contents(*c, objects);
  ASSERT_TRUE(c->locate(0));
  ASSERT_TRUE(c->erase(error)) << error;
  EXPECT_EQ(c->end_of_data(), 0u);
  EXPECT_EQ(c->filemarks(), 0u);
  EXPECT_EQ(c->bytes_used(), 0u);
  c.reset();
  c = open();
  EXPECT_EQ(c->end_of_data(), 0u);
  EXPECT_EQ(fs::file_size(path_), kDataStart);
  write_all(*c, {pattern(1, 3)});
  expect_contents(*c, {pattern(1, 3)});
}

// ---- capacity ----

TEST_F(CartridgeTest, EarlyWarningAndOverflowAreExactToTheByte) {
  auto c = create({.barcode = "SMALL", .capacity = 1000, .early_warning = 600});
  std::string error;
  EXPECT_EQ(c->write_block(pattern(1, 599), error), WriteResult::kOk);
  EXPECT_FALSE(c->past_early_warning());
  EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kOk);
  EXPECT_EQ(c->write_block(pattern(2, 1), error), WriteResult::kEarlyWarning);  // ends at 600
  EXPECT_TRUE(c->past_early_warning());
  EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kEarlyWarning);
  EXPECT_EQ(c->write_block(pattern(3, 400), error), WriteResult::kEarlyWarning);  // = capacity
  EXPECT_EQ(c->bytes_used(), 1000u);

  const auto size = fs::file_size(path_);
  EXPECT_EQ(c->write_block(pattern(4, 1), error), WriteResult::kOverflow);
  EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kOverflow);
  EXPECT_EQ(c->end_of_data(), 5u);
  EXPECT_EQ(fs::file_size(path_), size);

  // Back before the 400-byte block: one byte more does not fit, and the
  // refused write leaves the block in place.
  ASSERT_TRUE(c->locate(4));
  EXPECT_EQ(c->write_block(pattern(5, 401), error), WriteResult::kOverflow);
  EXPECT_EQ(c->end_of_data(), 5u);
  EXPECT_EQ(c->write_block(pattern(6, 300), error), WriteResult::kEarlyWarning);
  EXPECT_EQ(c->bytes_used(), 900u);
  EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kEarlyWarning);

  // A write that starts before early warning and ends after it.
  ASSERT_TRUE(c->locate(1));
  EXPECT_EQ(c->write_block(pattern(7, 2), error), WriteResult::kEarlyWarning);
  EXPECT_EQ(c->bytes_used(), 601u);
  ASSERT_TRUE(c->locate(1));
  EXPECT_EQ(c->write_block(pattern(8, 1), error), WriteResult::kEarlyWarning);
  ASSERT_TRUE(c->locate(1));
  EXPECT_EQ(c->write_filemarks(1, error), WriteResult::kOk);
  EXPECT_FALSE(c->past_early_warning());
  EXPECT_EQ(c->bytes_used(), 599u);

  c.reset();
  c = open();
  EXPECT_EQ(c->bytes_used(), 599u);
  EXPECT_EQ(c->end_of_data(), 2u);
}

// ---- damage and recovery ----

TEST_F(CartridgeTest, ADamagedPayloadIsAReadErrorNotData) {
  const Expected objects = [] {
    Expected v;
    for (std::uint64_t i = 0; i < 600; ++i) v.push_back(pattern(i, 100 + i));
    return v;
  }();
  {
    auto c = create();
    write_all(*c, objects);
  }
  // Object 10 lies before the last checkpoint (512); object 590 after it,
  // where open() verifies every object; object 599 is the last.
  Bytes file = read_file(path_);
  for (std::size_t n : {10u, 590u, 599u}) file[offset_of(objects, n) + 32 + 50] ^= 0x01;
  write_file(path_, file);

  auto c = open();
  ASSERT_NE(c, nullptr);
  // Damage in the last object is a torn tail: cut.
  EXPECT_EQ(c->end_of_data(), 599u);
  Bytes buffer(1000);
  std::uint32_t size = 0;
  std::string error;
  for (std::uint64_t n : {10u, 590u}) {
    ASSERT_TRUE(c->locate(n));
    EXPECT_EQ(c->peek().kind, Kind::kBlock);
    EXPECT_FALSE(c->read_block(buffer, size, error)) << n;
    EXPECT_NE(error.find("CRC"), std::string::npos) << error;
    EXPECT_EQ(c->position(), n);
    c->skip();
    ASSERT_TRUE(c->read_block(buffer, size, error)) << error;
    EXPECT_TRUE(std::equal(objects[n + 1]->begin(), objects[n + 1]->end(), buffer.begin()));
  }
}

TEST_F(CartridgeTest, ATornTailIsCutAtEveryOffset) {
  // 256 objects, then object 256 (a checkpoint, so the index has an entry
  // for it) torn at every length.
  Expected objects = small_objects(256, 12);
  objects.push_back(pattern(1234, 1500));
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes whole = read_file(path_);
  const Bytes index = read_file(index_path());
  const std::uint64_t last = offset_of(objects, 256);
  ASSERT_EQ(whole.size(), last + kOverhead + 1500);
  Expected kept(objects.begin(), objects.end() - 1);

  for (std::uint64_t cut = last; cut < whole.size(); ++cut) {
    // The file ends at `last` after each recovery: put back up to the cut,
    // and every other time the zeros of an extent after it.
    overwrite(path_, last, std::span(whole).subspan(last, cut - last));
    if (cut % 2 == 1) grow_with_zeros(path_, kExtent);
    overwrite(index_path(), 0, index);
    auto c = open();
    ASSERT_NE(c, nullptr) << cut;
    ASSERT_EQ(c->end_of_data(), 256u) << cut;
    ASSERT_EQ(fs::file_size(path_), last) << cut;
    ASSERT_TRUE(c->locate(255));
    ASSERT_EQ(c->peek().kind, kept[255] ? Kind::kBlock : Kind::kFilemark);
    c->skip();
    ASSERT_EQ(c->peek().kind, Kind::kEndOfData) << cut;
    if (cut % 97 == 0 || cut == last) {
      expect_contents(*c, kept);
      // Writing goes on where the tail was cut.
      write_all(*c, {pattern(5, 10)});
      c.reset();
      c = open();
      ASSERT_EQ(c->end_of_data(), 257u);
    }
  }
}

TEST_F(CartridgeTest, ATornFilemarkAndGarbageAfterTheEndAreCut) {
  Expected objects = small_objects(40, 13);
  objects.push_back(std::nullopt);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes whole = read_file(path_);
  const Bytes index = read_file(index_path());
  const std::uint64_t last = offset_of(objects, 40);
  Expected kept(objects.begin(), objects.end() - 1);
  for (std::uint64_t cut = last; cut < whole.size(); ++cut) {
    // With and without zeros after the torn filemark: its trailer then
    // reads as length 0 (right for a filemark) and CRC 0 (wrong).
    overwrite(path_, last, std::span(whole).subspan(last, cut - last));
    if (cut % 2 == 1) grow_with_zeros(path_, kExtent);
    overwrite(index_path(), 0, index);
    auto c = open();
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->end_of_data(), 40u) << cut;
    ASSERT_EQ(fs::file_size(path_), last) << cut;
    ASSERT_EQ(c->filemarks(),
              static_cast<std::uint64_t>(std::count(kept.begin(), kept.end(), std::nullopt)));
  }
  // Zeros (a file extended by a power cut) and noise after the end.
  for (const Bytes& tail : {Bytes(4096, 0), pattern(77, 5000)}) {
    Bytes file = whole;
    file.insert(file.end(), tail.begin(), tail.end());
    write_file(path_, file);
    write_file(index_path(), index);
    auto c = open();
    ASSERT_NE(c, nullptr);
    expect_contents(*c, objects);
    EXPECT_EQ(fs::file_size(path_), whole.size());
  }
}

TEST_F(CartridgeTest, ADamagedOrForeignIndexIsIgnoredAndRebuilt) {
  Expected objects = small_objects(2000, 14);
  for (int i = 0; i < 5; ++i) objects.push_back(std::nullopt);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes good = read_file(index_path());
  // A checkpoint per 256 objects and an entry per filemark, after a header.
  const std::size_t entries = (good.size() - 64) / 32;
  const auto marks =
      static_cast<std::size_t>(std::count(objects.begin(), objects.end(), std::nullopt));
  ASSERT_EQ(good.size(), 64 + entries * 32);
  EXPECT_GE(entries, marks + 7);

  // Another cartridge's index, for the foreign case.
  std::string error;
  {
    auto other = Cartridge::create(dir_ / "other", default_attributes(), error);
    ASSERT_NE(other, nullptr) << error;
    write_all(*other, objects);
  }
  const Bytes foreign = read_file(fs::path((dir_ / "other").string() + ".index"));
  ASSERT_EQ(foreign.size(), good.size());

  std::vector<std::pair<std::string, std::optional<Bytes>>> damages;
  damages.emplace_back("missing", std::nullopt);
  damages.emplace_back("empty", Bytes{});
  damages.emplace_back("noise", pattern(5, good.size()));
  damages.emplace_back("torn entry", Bytes(good.begin(), good.end() - 13));
  damages.emplace_back("foreign", foreign);
  Bytes flipped = good;
  flipped[64 + 32 * (entries / 2) + 3] ^= 0x40;
  damages.emplace_back("flipped bit", flipped);
  Bytes header = good;
  header[13] ^= 0x01;  // the checkpoint interval
  damages.emplace_back("bad header", header);
  // An entry of a filemark in the middle dropped: the entries are each
  // valid, but the file numbers no longer follow.
  Bytes dropped = good;
  dropped.erase(dropped.begin() + 64 + 32 * static_cast<std::ptrdiff_t>(entries / 2),
                dropped.begin() + 64 + 32 * static_cast<std::ptrdiff_t>(entries / 2 + 1));
  damages.emplace_back("entry dropped", dropped);
  // Entries that point at the wrong objects.
  Bytes shifted = good;
  std::copy(good.begin() + 64 + 32, good.end() - 32, shifted.begin() + 64 + 64);
  damages.emplace_back("entries shifted", shifted);

  for (const auto& [what, bytes] : damages) {
    if (bytes) {
      write_file(index_path(), *bytes);
    } else {
      fs::remove(index_path());
    }
    auto c = open();
    ASSERT_NE(c, nullptr) << what;
    expect_contents(*c, objects);
    for (std::uint64_t from = 0; from <= objects.size(); from += 7) {
      const auto next = c->next_filemark(from);
      std::uint64_t expected = from;
      while (expected < objects.size() && objects[expected]) ++expected;
      ASSERT_EQ(next.value_or(objects.size()), expected) << what << " " << from;
    }
    c.reset();
    EXPECT_EQ(read_file(index_path()), good) << what;
  }
}

}  // namespace
}  // namespace scsi::emu
