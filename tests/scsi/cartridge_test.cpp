// The cartridge: CRC-32C, writing and reading objects back, positioning,
// capacity, write protection, and recovery from torn tails, damaged blocks
// and damaged tables.  The tests know the documented format (a map of a
// 4096-byte superblock area and 32-byte entries, object n's at 4096 + 32 n;
// a data file of the blocks back to back) to damage files precisely.

#include "scsi/emu/cartridge.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>

#include "scsi/crc32c.h"

// Every fdatasync of this test binary comes here first (a definition in
// the executable takes precedence over libc's), is counted, and goes on to
// libc's: the tests can see which operations sync.
namespace {
std::atomic<std::uint64_t> fdatasync_calls{0};
}  // namespace
extern "C" int fdatasync(int fd) noexcept {
  using Sync = int (*)(int);
  static const auto real = reinterpret_cast<Sync>(::dlsym(RTLD_NEXT, "fdatasync"));
  fdatasync_calls.fetch_add(1);
  return real(fd);
}

namespace scsi::emu {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using Kind = Cartridge::Kind;
using WriteResult = Cartridge::WriteResult;

constexpr std::uint64_t kMapStart = 4096;
constexpr std::uint64_t kEntrySize = 32;
// The entries that open() verifies, at the end of the table.
constexpr std::uint64_t kTailObjects = 256;

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
  Bytes data(270000);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  // Lengths around the interleaved strides (3 x 256, 3 x 8192), the
  // folding thresholds (1024, then 256 at a time) and the block where
  // folding and crc32 run together (25600); offsets that misalign
  // the start.
  for (std::size_t length :
       {0u,     1u,     7u,     8u,     9u,     767u,   768u,   769u,    1023u,   1024u,
        1025u,  1279u,  1280u,  1281u,  1536u,  2047u,  24575u, 24576u,  24577u,  25599u,
        25600u, 25601u, 26623u, 51199u, 51200u, 51201u, 65536u, 100000u, 199990u, 262144u}) {
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

  fs::path data_path() const { return fs::path(path_.string() + ".data"); }

  std::unique_ptr<Cartridge> create(Cartridge::Attributes a = default_attributes()) {
    std::string error;
    auto c = Cartridge::create(path_, a, error);
    EXPECT_NE(c, nullptr) << error;
    return c;
  }
  std::unique_ptr<Cartridge> open() {
    std::string error;
    auto c = Cartridge::open(path_, error);
    EXPECT_NE(c, nullptr) << error;
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

  // Block bytes before object n: where its block starts in the data file.
  static std::uint64_t data_offset_of(const Expected& objects, std::size_t n) {
    std::uint64_t offset = 0;
    for (std::size_t i = 0; i < n; ++i) offset += objects[i] ? objects[i]->size() : 0;
    return offset;
  }
  static std::uint64_t map_size_for(std::uint64_t objects) {
    return kMapStart + kEntrySize * objects;
  }

  // Both files end at the end of data: an entry per object in the map, and
  // the data file is the blocks back to back, nothing else.
  void expect_files_hold(const Expected& objects) const {
    EXPECT_EQ(fs::file_size(path_), map_size_for(objects.size()));
    Bytes blocks;
    for (const auto& o : objects) {
      if (o) blocks.insert(blocks.end(), o->begin(), o->end());
    }
    EXPECT_TRUE(read_file(data_path()) == blocks) << "the data file is not the blocks";
  }

  fs::path dir_;
  fs::path path_;
};

// `count` blocks and no filemark: written after `before`, nothing syncs
// them (what a power cut may take).
Expected then_unsynced_blocks(Expected before, std::size_t count, std::uint64_t seed) {
  for (std::size_t i = 0; i < count; ++i) before.push_back(pattern(seed * 1000003 + i, 1 + i % 97));
  return before;
}

// `count` blocks of `size` bytes and a filemark (a sync), then
// `unsynced` blocks.
Expected synced_then_unsynced(std::size_t count, std::size_t size, std::size_t unsynced,
                              std::uint64_t seed) {
  Expected objects;
  for (std::size_t i = 0; i < count; ++i) objects.push_back(pattern(seed * 7919 + i, size));
  objects.push_back(std::nullopt);
  return then_unsynced_blocks(objects, unsynced, seed);
}

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
    const Bytes map_before = read_file(path_);
    EXPECT_TRUE(c->flush(error)) << error;
    EXPECT_EQ(read_file(path_), map_before);  // not even the synced count
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

TEST_F(CartridgeTest, AGenerationNoCartridgeReachesIsDamage) {
  // Slot 1 made valid (magic, CRC) but write-protected and with a
  // generation near 2^64: were it taken, it would stay in force past every
  // later write, whose generation would wrap around.  It is not taken.
  {
    auto c = create();
    write_all(*c, {pattern(1, 10)});
  }
  Bytes file = read_file(path_);
  std::copy(file.begin(), file.begin() + 2048, file.begin() + 2048);
  std::uint8_t* slot = file.data() + 2048;
  const std::uint64_t generation = ~std::uint64_t{0};  // odd: slot 1's parity
  for (int i = 0; i < 8; ++i) slot[16 + i] = static_cast<std::uint8_t>(generation >> (8 * i));
  slot[12] |= 0x01;  // write-protected
  const std::uint32_t crc = crc32c(std::span(slot, 96));
  for (int i = 0; i < 4; ++i) slot[96 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
  write_file(path_, file);
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->attributes().write_protected);  // slot 0's
    std::string error;
    ASSERT_TRUE(c->locate(1));
    ASSERT_EQ(c->write_filemarks(1, error), WriteResult::kOk) << error;
  }
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->synced(), 2u);  // the record the filemark wrote is in force
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
  expect_files_hold(objects);
}

TEST_F(CartridgeTest, BlocksOutsideTheSizeRangeAreRefused) {
  auto c = create();
  std::string error;
  EXPECT_EQ(c->write_block({}, error), WriteResult::kIoError);
  const Bytes big(Cartridge::kMaxBlock + 1, 0x55);
  EXPECT_EQ(c->write_block(big, error), WriteResult::kIoError);
  EXPECT_EQ(c->end_of_data(), 0u);
  expect_files_hold({});
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

TEST_F(CartridgeTest, EachWriteEndsBothFilesAtTheEndOfData) {
  Expected objects;
  for (std::uint64_t i = 0; i < 8; ++i) objects.push_back(pattern(i, 262144));
  objects.push_back(std::nullopt);
  objects.push_back(pattern(8, 139));
  objects.push_back(pattern(9, 262144));
  auto c = create();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    write_all(*c, {objects[i]});
    expect_files_hold(
        Expected(objects.begin(), objects.begin() + static_cast<std::ptrdiff_t>(i + 1)));
  }
  c.reset();
  c = open();
  expect_contents(*c, objects);
  expect_files_hold(objects);
}

TEST_F(CartridgeTest, AFixedBlockWriteTakesWhatFitsAndCountsIt) {
  auto c = create({.barcode = "FIXED", .capacity = 10000, .early_warning = 6000});
  std::string error;
  std::uint32_t written = 99;
  const Bytes four = pattern(1, 4 * 1000);
  EXPECT_EQ(c->write_blocks(four, 1000, written, error), WriteResult::kOk) << error;
  EXPECT_EQ(written, 4u);
  EXPECT_EQ(c->write_blocks(Bytes(999), 1000, written, error), WriteResult::kIoError);
  EXPECT_EQ(written, 0u);
  EXPECT_EQ(c->write_blocks(Bytes(2000), 0, written, error), WriteResult::kIoError);
  // 4000 + 3000 ends past early warning.
  const Bytes three = pattern(2, 3 * 1000);
  EXPECT_EQ(c->write_blocks(three, 1000, written, error), WriteResult::kEarlyWarning);
  EXPECT_EQ(written, 3u);
  // Five more do not fit: three do, and stay.
  const Bytes five = pattern(3, 5 * 1000);
  EXPECT_EQ(c->write_blocks(five, 1000, written, error), WriteResult::kOverflow);
  EXPECT_EQ(written, 3u);
  EXPECT_EQ(c->bytes_used(), 10000u);
  Expected objects;
  for (const Bytes* b : {&four, &three, &five}) {
    for (std::size_t i = 0; i < b->size() / 1000 && objects.size() < 10; ++i) {
      objects.push_back(Bytes(b->begin() + static_cast<std::ptrdiff_t>(i * 1000),
                              b->begin() + static_cast<std::ptrdiff_t>((i + 1) * 1000)));
    }
  }
  expect_contents(*c, objects);
  c.reset();
  c = open();
  expect_contents(*c, objects);
  expect_files_hold(objects);
  ASSERT_TRUE(c->set_write_protected(true));
  ASSERT_TRUE(c->locate(2));
  EXPECT_EQ(c->write_blocks(four, 1000, written, error), WriteResult::kWriteProtected);
  EXPECT_EQ(written, 0u);
  EXPECT_EQ(c->end_of_data(), 10u);
}

TEST_F(CartridgeTest, AFailedWriteLeavesTheCartridgeAsItWas) {
  // A file size limit of 1 MiB (EFBIG past it) stands for a full file
  // system: blocks that end below it can be written, one past it cannot.
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
  const WriteResult rb = c->write_filemarks(1, error);
  const WriteResult rc = c->write_block(b, error);
  const WriteResult rbig = c->write_block(big, error);  // past the limit
  const std::string big_error = error;
  std::uint32_t written = 99;
  const WriteResult rfixed = c->write_blocks(big, 1u << 16, written, error);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  EXPECT_EQ(ra, WriteResult::kOk);
  EXPECT_EQ(rb, WriteResult::kOk);
  EXPECT_EQ(rc, WriteResult::kOk);
  EXPECT_EQ(rbig, WriteResult::kIoError);
  EXPECT_NE(big_error.find(".data"), std::string::npos) << big_error;
  EXPECT_EQ(rfixed, WriteResult::kIoError);
  EXPECT_EQ(written, 0u);
  const Expected objects{a, std::nullopt, b};
  expect_files_hold(objects);
  expect_contents(*c, objects);
  // And the cartridge goes on.
  write_all(*c, {pattern(4, 10)});
  c.reset();
  c = open();
  expect_contents(*c, {a, std::nullopt, b, pattern(4, 10)});
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

TEST_F(CartridgeTest, LocateReadsNothingAndAReadOnePageOfTheTable) {
  const Expected objects = small_objects(1500, 6);
  auto c = create();
  write_all(*c, objects);
  const auto calibrate = read_syscalls();
  const auto calibrated = read_syscalls();
  const std::uint64_t proc_reads = calibrate && calibrated ? *calibrated - *calibrate : 0;
  std::mt19937_64 rng(4);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t n = i < 1500 ? 1499 - static_cast<std::uint64_t>(i) : rng() % 1500;
    const auto before = read_syscalls();
    ASSERT_TRUE(c->locate(n));
    const auto located = read_syscalls();
    ASSERT_EQ(c->peek().kind, objects[n] ? Kind::kBlock : Kind::kFilemark) << n;
    const auto peeked = read_syscalls();
    if (before && located && peeked) {
      EXPECT_EQ(*located - *before - proc_reads, 0u) << n;
      EXPECT_LE(*peeked - *located - proc_reads, 1u) << n;  // a page of entries, or none
    }
    if (objects[n]) {
      ASSERT_EQ(c->peek().size, objects[n]->size()) << n;
    }
  }
}

TEST_F(CartridgeTest, LocateOnAMillionBlocksReadsOneEntryPage) {
  constexpr std::uint64_t kBlocks = 1'000'000;
  {
    auto c = create();
    std::string error;
    // Fixed-block writes of 10000 one-byte blocks (their entries go in
    // several writes), after a single one.
    Bytes group(10000);
    for (std::uint64_t i = 0; i < kBlocks;) {
      if (i == 0) {
        const std::uint8_t b = static_cast<std::uint8_t>(i * 7);
        ASSERT_EQ(c->write_block(std::span(&b, 1), error), WriteResult::kOk) << i << error;
        ++i;
        continue;
      }
      const std::uint64_t n = std::min<std::uint64_t>(group.size(), kBlocks - i);
      for (std::uint64_t k = 0; k < n; ++k) group[k] = static_cast<std::uint8_t>((i + k) * 7);
      std::uint32_t written = 0;
      ASSERT_EQ(c->write_blocks(std::span(group).first(n), 1, written, error), WriteResult::kOk)
          << error;
      i += written;
    }
  }
  const auto opening = proc_io("rchar");
  auto c = open();
  ASSERT_NE(c, nullptr);
  const auto opened = proc_io("rchar");
  ASSERT_EQ(c->end_of_data(), kBlocks);
  EXPECT_EQ(c->bytes_used(), kBlocks);
  if (opening && opened) {
    // The superblocks and the last entries, not the table (32 MB).
    EXPECT_LT(*opened - *opening, 64u << 10);
  }

  const auto calibrate = read_syscalls();
  const auto calibrated = read_syscalls();
  const std::uint64_t proc_reads = calibrate && calibrated ? *calibrated - *calibrate : 0;
  std::mt19937_64 rng(3);
  std::uint64_t worst = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t n = rng() % kBlocks;
    const auto before = read_syscalls();
    ASSERT_TRUE(c->locate(n));
    ASSERT_EQ(c->position(), n);
    std::uint8_t b = 0;
    std::uint32_t size = 0;
    std::string error;
    ASSERT_TRUE(c->read_block(std::span(&b, 1), size, error)) << error;
    const auto after = read_syscalls();
    if (before && after) worst = std::max(worst, *after - *before - proc_reads);
    ASSERT_EQ(size, 1u);
    ASSERT_EQ(b, static_cast<std::uint8_t>(n * 7)) << n;
  }
  if (read_syscalls()) {
    EXPECT_LE(worst, 2u);  // a page of entries and the block
    EXPECT_GT(worst, 0u);  // the counter does count
  }
  // SPACE over filemarks: binary searches over the table.
  std::string error;
  ASSERT_TRUE(c->locate(kBlocks));
  ASSERT_EQ(c->write_filemarks(1, error), WriteResult::kOk) << error;
  EXPECT_EQ(c->next_filemark(0), kBlocks);
  EXPECT_EQ(c->previous_filemark(kBlocks + 1), kBlocks);
  EXPECT_EQ(c->previous_filemark(kBlocks), std::nullopt);
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
  // The last block's CRC holds, so recovery reads it and stops (not the
  // 200 MiB the window's entries describe).
  if (before && after) {
    EXPECT_LT(*after - *before, 2u << 20);
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
  expect_files_hold(objects);

  // A filemark written in the middle does the same.
  ASSERT_TRUE(c->locate(100));
  ASSERT_EQ(c->write_filemarks(2, error), WriteResult::kOk) << error;
  objects.resize(100);
  objects.push_back(std::nullopt);
  objects.push_back(std::nullopt);
  expect_contents(*c, objects);
  EXPECT_EQ(c->next_filemark(101), 101u);
  EXPECT_EQ(c->next_filemark(102), std::nullopt);
  expect_files_hold(objects);
  c.reset();
  c = open();
  expect_files_hold(objects);
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
  expect_files_hold({});
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
  EXPECT_EQ(fs::file_size(data_path()), 1000u);

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

TEST_F(CartridgeTest, ADamagedBlockIsAReadErrorNotData) {
  const Expected objects = [] {
    Expected v;
    for (std::uint64_t i = 0; i < 600; ++i) v.push_back(pattern(i, 100 + i));
    return v;
  }();
  {
    auto c = create();
    write_all(*c, objects);
  }
  // Object 10 lies before the entries open() verifies; object 590 among
  // them; object 599 is the last.
  Bytes data = read_file(data_path());
  for (std::size_t n : {10u, 590u, 599u}) data[data_offset_of(objects, n) + 50] ^= 0x01;
  write_file(data_path(), data);

  auto c = open();
  ASSERT_NE(c, nullptr);
  // Damage in the last block is a torn tail: cut.  Object 598 is intact,
  // so the blocks before it are damage in the middle: kept.
  EXPECT_EQ(c->end_of_data(), 599u);
  EXPECT_EQ(fs::file_size(data_path()), data_offset_of(objects, 599));
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
  // Without CRC checks the damaged block reads back as it is on disk.
  c->set_verify_reads(false);
  ASSERT_TRUE(c->locate(10));
  ASSERT_TRUE(c->read_block(buffer, size, error)) << error;
  EXPECT_EQ(size, objects[10]->size());
}

TEST_F(CartridgeTest, ADamagedEntryIsAReadErrorNotData) {
  const Expected objects = small_objects(1000, 15);
  {
    auto c = create();
    write_all(*c, objects);
  }
  Bytes map = read_file(path_);
  map[map_size_for(100) + 9] ^= 0x04;  // object 100's data offset
  write_file(path_, map);
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->end_of_data(), objects.size());
  ASSERT_TRUE(c->locate(100));
  EXPECT_EQ(c->peek().kind, Kind::kBlock);
  EXPECT_EQ(c->peek().size, 0u);
  Bytes buffer(1000);
  std::uint32_t size = 0;
  std::string error;
  EXPECT_FALSE(c->read_block(buffer, size, error));
  EXPECT_NE(error.find("unreadable"), std::string::npos) << error;
  EXPECT_EQ(c->position(), 100u);
  // Writing there is refused (the entry says where the data would go).
  EXPECT_EQ(c->write_block(pattern(1, 10), error), WriteResult::kIoError);
  EXPECT_EQ(c->end_of_data(), objects.size());
  // The rest reads back, and the head moves past the damage.
  c->skip();
  EXPECT_EQ(c->position(), 101u);
  for (std::uint64_t n = 101; n < objects.size(); ++n) {
    if (!objects[n]) {
      EXPECT_EQ(c->peek().kind, Kind::kFilemark);
      c->skip();
      continue;
    }
    ASSERT_TRUE(c->read_block(buffer, size, error)) << n << ": " << error;
    ASSERT_TRUE(std::equal(objects[n]->begin(), objects[n]->end(), buffer.begin())) << n;
  }
}

TEST_F(CartridgeTest, ATornTailIsCutAtEveryOffset) {
  // 300 objects, then object 300, a block, torn in each way kill -9 can
  // tear it: its bytes in part, its bytes whole and its entry in part.
  // (And a power cut: the entry whole but its bytes not.)
  Expected objects = small_objects(300, 12);
  objects.push_back(pattern(1234, 1500));
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes map = read_file(path_);
  const Bytes data = read_file(data_path());
  const std::uint64_t map_last = map_size_for(300);
  const std::uint64_t data_last = data_offset_of(objects, 300);
  ASSERT_EQ(map.size(), map_last + kEntrySize);
  ASSERT_EQ(data.size(), data_last + 1500);
  Expected kept(objects.begin(), objects.end() - 1);

  auto expect_cut = [&](const std::string& what) {
    auto c = open();
    ASSERT_NE(c, nullptr) << what;
    ASSERT_EQ(c->end_of_data(), 300u) << what;
    ASSERT_EQ(fs::file_size(path_), map_last) << what;
    ASSERT_EQ(fs::file_size(data_path()), data_last) << what;
    ASSERT_TRUE(c->locate(299));
    ASSERT_EQ(c->peek().kind, kept[299] ? Kind::kBlock : Kind::kFilemark);
    c->skip();
    ASSERT_EQ(c->peek().kind, Kind::kEndOfData) << what;
  };
  // The block's bytes in part (no entry yet).
  for (std::uint64_t length = 0; length <= 1500; length += (length < 64 ? 1 : 37)) {
    overwrite(data_path(), data_last, std::span(data).subspan(data_last, length));
    expect_cut("bytes " + std::to_string(length));
  }
  // The bytes whole, the entry in part.
  for (std::uint64_t length = 0; length < kEntrySize; ++length) {
    overwrite(data_path(), data_last, std::span(data).subspan(data_last));
    overwrite(path_, map_last, std::span(map).subspan(map_last, length));
    expect_cut("entry " + std::to_string(length));
  }
  // The entry whole, the bytes not (or some of them): a power cut.
  for (std::uint64_t length : {0u, 1u, 1000u, 1499u}) {
    overwrite(path_, map_last, std::span(map).subspan(map_last));
    overwrite(data_path(), data_last, std::span(data).subspan(data_last, length));
    expect_cut("power cut " + std::to_string(length));
  }
  // The bytes there but wrong (zeros written by a power cut's recovery).
  overwrite(path_, map_last, std::span(map).subspan(map_last));
  overwrite(data_path(), data_last, Bytes(1500, 0));
  expect_cut("zeros");
  // And whole, it stays; writing goes on after it.
  overwrite(path_, map_last, std::span(map).subspan(map_last));
  overwrite(data_path(), data_last, std::span(data).subspan(data_last));
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    expect_contents(*c, objects);
    write_all(*c, {pattern(5, 10)});
  }
  objects.push_back(pattern(5, 10));
  auto c = open();
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, ATornFilemarkAndGarbageAfterTheEndAreCut) {
  Expected objects = small_objects(40, 13);
  objects.push_back(std::nullopt);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes map = read_file(path_);
  const Bytes data = read_file(data_path());
  const std::uint64_t last = map_size_for(40);
  Expected kept(objects.begin(), objects.end() - 1);
  const auto marks = static_cast<std::uint64_t>(std::count(kept.begin(), kept.end(), std::nullopt));
  for (std::uint64_t length = 0; length < kEntrySize; ++length) {
    overwrite(path_, last, std::span(map).subspan(last, length));
    auto c = open();
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->end_of_data(), 40u) << length;
    ASSERT_EQ(fs::file_size(path_), last) << length;
    ASSERT_EQ(c->filemarks(), marks);
  }
  // Zeros and noise after the end of either file (a file extended by a
  // power cut, or stale entries).
  for (const Bytes& tail : {Bytes(4096, 0), pattern(77, 5000)}) {
    for (const bool in_map : {true, false}) {
      Bytes m = map, d = data;
      (in_map ? m : d).insert((in_map ? m : d).end(), tail.begin(), tail.end());
      write_file(path_, m);
      write_file(data_path(), d);
      auto c = open();
      ASSERT_NE(c, nullptr);
      expect_contents(*c, objects);
      expect_files_hold(objects);
    }
  }
}

TEST_F(CartridgeTest, AnOverwriteSyncsTheCutTableBeforeWritingAfterIt) {
  // Appending syncs nothing; writing in the middle first makes the cut
  // durable, so that a power cut cannot bring back what it discarded (the
  // case of the next test, which the chain CRCs alone catch only within
  // open()'s window).
  auto c = create();
  write_all(*c, small_objects(50, 21));
  std::string error;
  std::uint64_t before = fdatasync_calls.load();
  ASSERT_EQ(c->write_block(pattern(1, 300), error), WriteResult::kOk) << error;
  EXPECT_EQ(fdatasync_calls.load(), before);
  ASSERT_TRUE(c->locate(20));
  before = fdatasync_calls.load();
  ASSERT_EQ(c->write_block(pattern(2, 300), error), WriteResult::kOk) << error;
  EXPECT_GE(fdatasync_calls.load(), before + 1);
  EXPECT_EQ(c->end_of_data(), 21u);
}

TEST_F(CartridgeTest, StaleEntriesAfterAnOverwriteAreNotTakenForNewOnes) {
  // What a power cut can leave after an overwrite: the truncate undone, so
  // the old entries (and blocks) follow the new ones.
  Expected objects = small_objects(120, 16);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes old_map = read_file(path_);
  const Bytes old_data = read_file(data_path());
  {
    auto c = open();
    ASSERT_TRUE(c->locate(60));
    write_all(*c, {pattern(500, objects[60] ? objects[60]->size() : 10)});
  }
  objects.resize(60);
  objects.push_back(pattern(500, read_file(data_path()).size() - data_offset_of(objects, 60)));
  Bytes map = read_file(path_);
  Bytes data = read_file(data_path());
  map.insert(map.end(), old_map.begin() + static_cast<std::ptrdiff_t>(map.size()), old_map.end());
  if (old_data.size() > data.size()) {
    data.insert(data.end(), old_data.begin() + static_cast<std::ptrdiff_t>(data.size()),
                old_data.end());
  }
  write_file(path_, map);
  write_file(data_path(), data);
  auto c = open();
  ASSERT_NE(c, nullptr);
  expect_contents(*c, objects);
  expect_files_hold(objects);
}

TEST_F(CartridgeTest, LostWritesOfMoreThanAWindowAreCutBackToWhereTheEntriesStop) {
  // A power cut in a long append: of the table's unsynced tail, some pages
  // read as zeros and some that reached the disk after them are whole (an
  // island of entries that hold among themselves, not after the zeros).
  // More than a window of it: the entries are verified back to where they
  // stop holding, and the cartridge opens with what came before.
  const Expected objects = then_unsynced_blocks(small_objects(600, 22), 5 * kTailObjects, 22);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes map = read_file(path_);
  const Bytes data = read_file(data_path());
  const Expected kept(objects.begin(), objects.begin() + 600);
  for (const bool island : {false, true}) {
    SCOPED_TRACE(island ? "zeros, an island, zeros" : "zeros");
    Bytes m = map;
    std::fill(m.begin() + static_cast<std::ptrdiff_t>(map_size_for(600)), m.end(), 0);
    if (island) {
      const auto from = static_cast<std::ptrdiff_t>(map_size_for(600 + 3 * kTailObjects));
      const auto to = from + static_cast<std::ptrdiff_t>(kTailObjects * kEntrySize);
      std::copy(map.begin() + from, map.begin() + to, m.begin() + from);
    }
    write_file(path_, m);
    write_file(data_path(), data);
    auto c = open();
    ASSERT_NE(c, nullptr);
    expect_contents(*c, kept);
    expect_files_hold(kept);
  }
}

TEST_F(CartridgeTest, TornBlocksAtTheEndAreCutAcrossWindows) {
  // The entries reached the disk, the last blocks' bytes did not (zeros):
  // the walk over the blocks goes on into the window before.
  Expected objects;
  for (std::size_t i = 0; i < kTailObjects + 50; ++i) objects.push_back(pattern(i + 1, 100));
  {
    auto c = create();
    write_all(*c, objects);
  }
  Bytes data = read_file(data_path());
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(data_offset_of(objects, 20)), data.end(), 0);
  write_file(data_path(), data);
  auto c = open();
  ASSERT_NE(c, nullptr);
  const Expected kept(objects.begin(), objects.begin() + 20);
  expect_contents(*c, kept);
  expect_files_hold(kept);
}

TEST_F(CartridgeTest, WhatASyncMadeDurableIsNeverCut) {
  // 300 blocks and a filemark (a sync), then 50 blocks nothing synced.
  const Expected objects = synced_then_unsynced(300, 50, 50, 23);
  {
    auto c = create();
    EXPECT_EQ(c->synced(), 0u);
    write_all(*c, objects);
    EXPECT_EQ(c->synced(), 301u);
  }
  const Bytes map = read_file(path_);
  // Damage to a synced entry among the last 256 reads back as an error;
  // nothing is cut.
  {
    Bytes m = map;
    m[map_size_for(250) + 9] ^= 0x20;
    write_file(path_, m);
    auto c = open();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->end_of_data(), objects.size());
    EXPECT_EQ(c->synced(), 301u);
    ASSERT_TRUE(c->locate(250));
    Bytes buffer(100);
    std::uint32_t size = 0;
    std::string error;
    EXPECT_FALSE(c->read_block(buffer, size, error));
    EXPECT_NE(error.find("unreadable"), std::string::npos) << error;
    c->skip();
    for (std::uint64_t n = 251; n < objects.size(); ++n) {
      if (!objects[n]) {
        EXPECT_EQ(c->peek().kind, Kind::kFilemark) << n;
        c->skip();
        continue;
      }
      ASSERT_TRUE(c->read_block(buffer, size, error)) << n << ": " << error;
      ASSERT_TRUE(std::equal(objects[n]->begin(), objects[n]->end(), buffer.begin())) << n;
    }
  }
  // Damage to an entry after the sync is a torn tail: cut there.
  {
    Bytes m = map;
    m[map_size_for(320) + 9] ^= 0x20;
    write_file(path_, m);
    auto c = open();
    ASSERT_NE(c, nullptr);
    const Expected kept(objects.begin(), objects.begin() + 320);
    expect_contents(*c, kept);
    expect_files_hold(kept);
  }
}

TEST_F(CartridgeTest, TheSyncedRecordEndsTheTableWhenItsLastEntryIsDamaged) {
  // 300 blocks and a filemark (synced), then 50 blocks lost to a power cut
  // (zeros), and the filemark's entry damaged: the end is where the
  // superblock recorded the sync, and the filemark reads as unreadable.
  const Expected objects = synced_then_unsynced(300, 30, 50, 25);
  {
    auto c = create();
    write_all(*c, objects);
  }
  const Bytes map = read_file(path_);
  const Bytes data = read_file(data_path());
  Bytes m = map;
  std::fill(m.begin() + static_cast<std::ptrdiff_t>(map_size_for(301)), m.end(), 0);
  m[map_size_for(300) + 17] ^= 0x01;  // the filemark's file number
  write_file(path_, m);
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->end_of_data(), 301u);
    EXPECT_EQ(c->synced(), 301u);
    EXPECT_EQ(c->filemarks(), 1u);
    ASSERT_TRUE(c->locate(300));
    EXPECT_EQ(c->peek().kind, Kind::kBlock);  // an entry that cannot be read
    EXPECT_EQ(c->peek().size, 0u);
    // Appending goes on from the recorded end.
    c->skip();
    std::string error;
    ASSERT_EQ(c->write_block(pattern(3, 30), error), WriteResult::kOk) << error;
  }
  EXPECT_EQ(open()->end_of_data(), 302u);
  // The filemark's chain CRC damaged instead: the record no longer holds,
  // none is known synced, and the table ends before the damage, as it
  // would without a record.
  m = map;
  std::fill(m.begin() + static_cast<std::ptrdiff_t>(map_size_for(301)), m.end(), 0);
  m[map_size_for(300) + 29] ^= 0x01;
  write_file(path_, m);
  write_file(data_path(), data);
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->synced(), 0u);
  const Expected kept(objects.begin(), objects.begin() + 300);
  expect_contents(*c, kept);
}

TEST_F(CartridgeTest, ASyncedRecordLeftBehindByAnOlderBuildDoesNotHold) {
  // A build from before the record overwrites in the middle and leaves the
  // superblock as it was: the recorded chain CRC no longer matches, and
  // the cartridge opens verified, as written.
  Expected objects;
  for (std::size_t i = 0; i < 100; ++i) objects.push_back(pattern(i + 5, 60));
  objects.push_back(std::nullopt);
  {
    auto c = create();
    write_all(*c, objects);
    EXPECT_EQ(c->synced(), 101u);
  }
  const Bytes before = read_file(path_);
  const Bytes superblocks(before.begin(), before.begin() + 4096);
  // (Longer blocks than before, so that the table and the data both still
  // reach what the record says: only its chain CRC tells.)
  Expected rewritten;
  for (std::size_t i = 0; i < 61; ++i) rewritten.push_back(pattern(i + 500, 100));
  {
    auto c = open();
    ASSERT_TRUE(c->locate(50));
    write_all(*c, rewritten);
  }
  objects.resize(50);
  objects.insert(objects.end(), rewritten.begin(), rewritten.end());
  Bytes map = read_file(path_);
  std::copy(superblocks.begin(), superblocks.end(), map.begin());
  write_file(path_, map);
  auto c = open();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->synced(), 0u);
  expect_contents(*c, objects);
  expect_files_hold(objects);
}

TEST_F(CartridgeTest, ACartridgeWrittenBeforeTheSyncedCountOpensAsBefore) {
  // Cartridges of version 2 written before the synced count have zeros
  // where it lies (bytes 100..131 of each superblock slot): they open with
  // none synced, whole, and the next sync records the count.
  Expected objects = small_objects(40, 24);
  objects.push_back(std::nullopt);
  {
    auto c = create();
    write_all(*c, objects);
    EXPECT_EQ(c->synced(), objects.size());
  }
  Bytes map = read_file(path_);
  for (const std::size_t slot : {0u, 2048u}) {
    std::fill(map.begin() + static_cast<std::ptrdiff_t>(slot + 100),
              map.begin() + static_cast<std::ptrdiff_t>(slot + 132), 0);
  }
  write_file(path_, map);
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->synced(), 0u);
    expect_contents(*c, objects);
    std::string error;
    ASSERT_TRUE(c->flush(error)) << error;
    EXPECT_EQ(c->synced(), objects.size());
  }
  auto c = open();
  EXPECT_EQ(c->synced(), objects.size());
  expect_contents(*c, objects);
}

TEST_F(CartridgeTest, AnOverwriteBringsTheSyncedCountDownBeforeItCuts) {
  Expected objects;
  for (std::size_t i = 0; i < 100; ++i) objects.push_back(pattern(i + 3, 40));
  objects.push_back(std::nullopt);
  auto c = create();
  write_all(*c, objects);
  EXPECT_EQ(c->synced(), 101u);
  ASSERT_TRUE(c->locate(50));
  std::string error;
  ASSERT_EQ(c->write_block(pattern(1, 40), error), WriteResult::kOk) << error;
  EXPECT_EQ(c->synced(), 50u);
  ASSERT_TRUE(c->flush(error)) << error;
  EXPECT_EQ(c->synced(), 51u);
  c.reset();
  c = open();
  EXPECT_EQ(c->synced(), 51u);
  EXPECT_EQ(c->end_of_data(), 51u);
}

TEST_F(CartridgeTest, AWindowOfNoiseIsCutBackToTheEntryBeforeIt) {
  // Every entry open() verifies is noise: the end of data is where the
  // window starts, after an entry that must itself hold.
  const Expected objects = then_unsynced_blocks(small_objects(344, 17), kTailObjects, 17);
  {
    auto c = create();
    write_all(*c, objects);
  }
  Bytes map = read_file(path_);
  const Bytes noise = pattern(9, kTailObjects * kEntrySize);
  std::copy(noise.begin(), noise.end(), map.end() - static_cast<std::ptrdiff_t>(noise.size()));
  write_file(path_, map);
  {
    auto c = open();
    ASSERT_NE(c, nullptr);
    const Expected kept(objects.begin(), objects.begin() + 344);
    expect_contents(*c, kept);
    expect_files_hold(kept);
  }
  // The same, with the entry before the window damaged too: refused, not
  // guessed at.
  map = read_file(path_);
  map.resize(map.size() + noise.size());
  std::copy(noise.begin(), noise.end(), map.end() - static_cast<std::ptrdiff_t>(noise.size()));
  map[map_size_for(343) + 2] ^= 0x10;
  write_file(path_, map);
  std::string error;
  EXPECT_EQ(Cartridge::open(path_, error), nullptr);
  EXPECT_NE(error.find("damaged"), std::string::npos) << error;
}

TEST_F(CartridgeTest, AnOlderFormatOrAMissingDataFileIsRefused) {
  {
    auto c = create();
    write_all(*c, {pattern(1, 10)});
  }
  // A superblock of format version 1, valid otherwise.
  Bytes map = read_file(path_);
  for (std::size_t slot : {0u, 2048u}) {
    map[slot + 8] = 1;
    const std::uint32_t crc = crc32c(std::span(map).subspan(slot, 96));
    for (int i = 0; i < 4; ++i) map[slot + 96 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
  }
  const Bytes good = read_file(path_);
  write_file(path_, map);
  std::string error;
  EXPECT_EQ(Cartridge::open(path_, error), nullptr);
  EXPECT_NE(error.find("format version 1"), std::string::npos) << error;

  write_file(path_, good);
  fs::remove(data_path());
  EXPECT_EQ(Cartridge::open(path_, error), nullptr);
  EXPECT_NE(error.find(".data"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(data_path()));
}

}  // namespace
}  // namespace scsi::emu
