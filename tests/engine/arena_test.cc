// The executor's arena: grow-only, zeroed, 64-byte aligned, and from 2 MiB on
// whole huge pages (aligned and rounded to 2 MiB) of a mapping of its own.

#include "engine/internal/arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

#include "gtest/gtest.h"

namespace sepconv {
namespace internal {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

bool AllZero(const char* data, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

TEST(ArenaTest, SmallReservationsAreCacheLineAlignedZeroedAndGrowOnly) {
  Arena arena;
  char* first = arena.Reserve(100);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  EXPECT_EQ(arena.capacity(), 128u);
  EXPECT_TRUE(AllZero(first, arena.capacity()));
  first[0] = 1;
  EXPECT_EQ(arena.Reserve(64), first);  // fits: same memory, contents kept
  char* grown = arena.Reserve(1000);
  EXPECT_EQ(arena.capacity(), 1024u);
  EXPECT_TRUE(AllZero(grown, arena.capacity()));
}

TEST(ArenaTest, LargeReservationsAreWholeHugePages) {
  Arena arena;
  char* data = arena.Reserve(kHugePage + 1);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % kHugePage, 0u);
  EXPECT_EQ(arena.capacity(), 2 * kHugePage);
  EXPECT_TRUE(AllZero(data, arena.capacity()));
  EXPECT_EQ(arena.Reserve(2 * kHugePage), data);
  arena.Release();
  EXPECT_EQ(arena.capacity(), 0u);
}

// Large arenas are mappings of their own, not chunks of malloc's heap (whose
// freed remainders left untouched pages where later buffers landed): the
// memory goes back to the system on release, and a page past the end
// faults.
TEST(ArenaDeathTest, LargeArenasAreMappingsOfTheirOwnWithAGuardPage) {
  Arena arena;
  char* data = arena.Reserve(kHugePage);
  ASSERT_NE(data, nullptr);
  const size_t capacity = arena.capacity();
  EXPECT_EQ(msync(data, 4096, MS_ASYNC), 0);
  EXPECT_DEATH(static_cast<volatile char*>(data)[capacity] = 1, "");
  arena.Release();
  errno = 0;
  EXPECT_EQ(msync(data, 4096, MS_ASYNC), -1) << "still mapped after Release";
  EXPECT_EQ(errno, ENOMEM);
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
