// The executor's arena: grow-only, zeroed, 64-byte aligned, and from 2 MiB on
// whole huge pages (aligned and rounded to 2 MiB).

#include "engine/internal/arena.h"

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

}  // namespace
}  // namespace internal
}  // namespace sepconv
