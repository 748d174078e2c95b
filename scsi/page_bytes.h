// Byte buffers that start on a page boundary, for records and batches of
// them.  The kernel copies between a file's page cache and a user buffer
// fastest when both are page-aligned: a 256 KiB record read into a buffer
// 16 bytes past a page boundary (where malloc puts a large block) moves
// about a quarter slower than into an aligned one.
//
// Buffers of kMapAtLeast bytes or more are mapped (mmap) and unmapped when
// freed, so that their memory goes back to the system at once; smaller
// ones come from aligned operator new.  Under AddressSanitizer every
// buffer comes from operator new, so that ASan watches records of any size
// (it does not see into mmap'd memory).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace scsi {

inline constexpr std::size_t kPageAlignment = 4096;
#if defined(__SANITIZE_ADDRESS__)
inline constexpr std::size_t kMapAtLeast = SIZE_MAX;
#else
inline constexpr std::size_t kMapAtLeast = 64u << 10;
#endif

template <typename T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() = default;
  template <typename U>
  PageAllocator(const PageAllocator<U>&) noexcept {}  // NOLINT: allocators convert implicitly
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMapAtLeast) {
      return static_cast<T*>(::operator new (bytes, std::align_val_t{kPageAlignment}));
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kMapAtLeast) {
      ::operator delete (p, std::align_val_t{kPageAlignment});
    } else {
      ::munmap(p, bytes);
    }
  }
  template <typename U>
  bool operator==(const PageAllocator<U>&) const noexcept {
    return true;
  }
};

using PageBytes = std::vector<std::uint8_t, PageAllocator<std::uint8_t>>;

}  // namespace scsi
