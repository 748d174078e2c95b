// PageBytes: record buffers that start on a page boundary, small (operator
// new) and large (mapped, except under AddressSanitizer) alike.

#include "scsi/page_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>

namespace scsi {
namespace {

bool page_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 4096 == 0; }

TEST(PageBytesTest, EverySizeStartsOnAPageAndHoldsWhatIsWritten) {
  for (const std::size_t size :
       {std::size_t{1}, std::size_t{4095}, kPageAlignment, (std::size_t{64} << 10) - 1,
        std::size_t{64} << 10, std::size_t{256} << 10, (std::size_t{2} << 20) + 1}) {
    PageBytes b(size);
    ASSERT_EQ(b.size(), size);
    EXPECT_TRUE(page_aligned(b.data())) << size;
    EXPECT_EQ(std::accumulate(b.begin(), b.end(), std::uint64_t{0}), 0u) << size;
    for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(i * 7);
    PageBytes copy = b;
    EXPECT_TRUE(page_aligned(copy.data())) << size;
    EXPECT_EQ(copy, b) << size;
    // Growing reallocates into a new aligned buffer and keeps the bytes.
    b.resize(size * 2 + 1);
    EXPECT_TRUE(page_aligned(b.data())) << size;
    EXPECT_TRUE(std::equal(copy.begin(), copy.end(), b.begin())) << size;
  }
}

}  // namespace
}  // namespace scsi
