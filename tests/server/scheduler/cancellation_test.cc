// server/core/cancellation.h: hooks run once, on Cancel or at once when late;
// Unregister stops them; concurrent use is safe (run under ASan/TSan too).

#include "server/core/cancellation.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

TEST(CancellationTest, CancelRunsEachRegisteredHookOnce) {
  Cancellation cancellation;
  int a = 0, b = 0;
  EXPECT_NE(cancellation.Register([&] { ++a; }), 0u);
  EXPECT_NE(cancellation.Register([&] { ++b; }), 0u);
  EXPECT_FALSE(cancellation.cancelled());
  EXPECT_EQ(a + b, 0);
  cancellation.Cancel();
  EXPECT_TRUE(cancellation.cancelled());
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  cancellation.Cancel();  // idempotent
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
}

TEST(CancellationTest, RegisterAfterCancelRunsTheHookAtOnce) {
  Cancellation cancellation;
  cancellation.Cancel();
  int runs = 0;
  EXPECT_EQ(cancellation.Register([&] { ++runs; }), 0u);
  EXPECT_EQ(runs, 1);
  cancellation.Unregister(0);  // what a caller does with the 0: harmless
  cancellation.Cancel();
  EXPECT_EQ(runs, 1);
}

TEST(CancellationTest, UnregisteredHookNeverRuns) {
  Cancellation cancellation;
  int kept = 0, removed = 0;
  const uint64_t id = cancellation.Register([&] { ++removed; });
  cancellation.Register([&] { ++kept; });
  cancellation.Unregister(id);
  cancellation.Unregister(id);         // twice: no-op
  cancellation.Unregister(id + 1000);  // unknown: no-op
  cancellation.Cancel();
  EXPECT_EQ(kept, 1);
  EXPECT_EQ(removed, 0);
}

TEST(CancellationTest, HookMayCallBackIntoTheCancellation) {
  Cancellation cancellation;
  uint64_t other = 0;
  int runs = 0;
  cancellation.Register([&] {
    cancellation.Unregister(other);  // runs outside the lock: no deadlock
    EXPECT_TRUE(cancellation.cancelled());
    EXPECT_EQ(cancellation.Register([&] { ++runs; }), 0u);
  });
  other = cancellation.Register([] {});
  cancellation.Cancel();
  EXPECT_EQ(runs, 1);
}

TEST(CancellationTest, HooksAreDestroyedWithoutRunningWhenNeverCancelled) {
  auto owned = std::make_shared<int>(0);
  {
    Cancellation cancellation;
    cancellation.Register([owned] { ++*owned; });
    EXPECT_EQ(owned.use_count(), 2);
  }
  EXPECT_EQ(owned.use_count(), 1);
  EXPECT_EQ(*owned, 0);
}

// Many threads register and unregister while another cancels: every hook
// still registered at the cancel runs exactly once, every hook registered
// after it runs at once, and an unregistered hook never runs.
TEST(CancellationTest, ConcurrentCancelRegisterUnregister) {
  for (int round = 0; round < 50; ++round) {
    Cancellation cancellation;
    constexpr int kThreads = 4;
    constexpr int kHooksPerThread = 200;
    std::vector<std::atomic<int>> runs(kThreads * kHooksPerThread);
    std::vector<char> unregistered(runs.size(), 0);
    std::vector<uint64_t> ids(runs.size(), 0);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < kHooksPerThread; ++i) {
          const size_t k = static_cast<size_t>(t * kHooksPerThread + i);
          ids[k] = cancellation.Register([&runs, k] { runs[k].fetch_add(1); });
          if (i % 3 == 0) {
            cancellation.Unregister(ids[k]);
            unregistered[k] = 1;
          }
        }
      });
    }
    std::thread canceller([&] {
      while (!go.load()) std::this_thread::yield();
      cancellation.Cancel();
    });
    go.store(true);
    for (std::thread& thread : threads) thread.join();
    canceller.join();
    ASSERT_TRUE(cancellation.cancelled());
    for (size_t k = 0; k < runs.size(); ++k) {
      if (unregistered[k] != 0) {
        // Unregistered after registering: it ran only if Cancel took it
        // first (or it was registered late, id 0, and ran at once).
        EXPECT_LE(runs[k].load(), 1) << k;
      } else {
        EXPECT_EQ(runs[k].load(), 1) << k;
      }
      if (ids[k] == 0) {
        EXPECT_EQ(runs[k].load(), 1) << k;
      }
    }
  }
}

}  // namespace
}  // namespace sepconv
