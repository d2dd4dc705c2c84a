#include "engine/internal/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace sepconv {
namespace internal {

namespace {

// Transparent huge pages' size on x86-64.
constexpr size_t kHugePage = size_t{2} << 20;
// A page past a mapped arena that no access may touch.
constexpr size_t kGuardBytes = 4096;

size_t RoundUp(size_t bytes, size_t multiple) {
  return (bytes + multiple - 1) / multiple * multiple;
}

// `bytes` (whole huge pages) mapped on a huge-page boundary, apart from
// malloc's heap, with a guard page after them. From the heap
// (aligned_alloc), each arena left a free chunk of pages never touched
// before its aligned start (up to 2 MiB), and the tuner's candidates free
// theirs: gRPC's receive buffers then landed in those fresh pages, and in
// about half the starts a warmed model's first request faulted 100-300
// pages in and parsed its 1.6 MB tensor in 0.85-1.17 ms against 0.22-0.24
// (docs/performance.md "Load to first request").
char* MapHugePages(size_t bytes) {
  const size_t span = bytes + kGuardBytes + kHugePage;
  void* mapped = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = RoundUp(start, kHugePage), end = aligned + bytes + kGuardBytes;
  if (aligned > start) munmap(mapped, aligned - start);
  if (start + span > end) munmap(reinterpret_cast<void*>(end), start + span - end);
  // A run past the end faults at once (AddressSanitizer catches one past a
  // malloc'd arena's end, not past a mapping's). Best effort.
  mprotect(reinterpret_cast<void*>(aligned + bytes), kGuardBytes, PROT_NONE);
  // Advice only: without huge pages the memory works the same.
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<char*>(aligned);
}

}  // namespace

void Arena::Free::operator()(char* data) const {
  if (mapped > 0) {
    munmap(data, mapped);
  } else {
    std::free(data);
  }
}

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
  if (huge) {
    data_ = std::unique_ptr<char, Free>(MapHugePages(rounded), Free{rounded + kGuardBytes});
  } else {
    char* data = static_cast<char*>(std::aligned_alloc(64, rounded));
    if (data == nullptr) throw std::bad_alloc();
    data_ = std::unique_ptr<char, Free>(data, Free{0});
  }
  // Zeroed (and so mapped) once, so that blocked layouts' channel padding
  // never starts as NaN garbage (oneDNN keeps the padding it writes zero).
  std::memset(data_.get(), 0, rounded);
  capacity_ = rounded;
  return data_.get();
}

}  // namespace internal
}  // namespace sepconv
