#include "engine/internal/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace sepconv {
namespace internal {

namespace {

// Transparent huge pages' size on x86-64.
constexpr size_t kHugePage = size_t{2} << 20;

size_t RoundUp(size_t bytes, size_t multiple) {
  return (bytes + multiple - 1) / multiple * multiple;
}

}  // namespace

char* Arena::Reserve(size_t bytes) {
  if (bytes <= capacity_ && data_ != nullptr) return data_.get();
  // From 2 MiB on, whole huge pages, asked for with madvise (Debian's kernel
  // gives them only to those who ask): with 4 KiB pages, a process's speed
  // over a large arena depends on where its pages land, under a hypervisor
  // most (MobileNet body 8x32x112: 98-103 ms in 5 of 16 fresh processes,
  // 52-71 ms in the rest; with huge pages 52-65 ms in 16 of 16).
  const bool huge = bytes >= kHugePage;
  const size_t rounded =
      huge ? RoundUp(bytes, kHugePage) : std::max<size_t>(64, RoundUp(bytes, 64));
  Release();  // the old contents are dead: free before allocating
  void* data = std::aligned_alloc(huge ? kHugePage : 64, rounded);
  if (data == nullptr) throw std::bad_alloc();
  // Advice only: without huge pages the memory works the same.
  if (huge) madvise(data, rounded, MADV_HUGEPAGE);
  // Zeroed once so that blocked layouts' channel padding never starts as
  // NaN garbage (oneDNN keeps the padding it writes zero).
  std::memset(data, 0, rounded);
  data_.reset(static_cast<char*>(data));
  capacity_ = rounded;
  return data_.get();
}

}  // namespace internal
}  // namespace sepconv
