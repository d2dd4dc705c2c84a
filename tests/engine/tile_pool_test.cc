// The fused kernels' thread pool: every task runs exactly once per Run, Run
// returns only when all have run, helpers that are slow to start leave their
// share to the caller, and each thread has its own pool.

#include "engine/internal/tile_pool.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace internal {
namespace {

TEST(TilePoolTest, RunsEveryTaskOnceAndReturnsWhenAllHaveRun) {
  TilePool pool;
  for (int threads : {1, 2, 3, 5}) {
    for (int64_t count : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> runs(static_cast<size_t>(count));
      std::atomic<int> bad_worker{0};
      pool.Run(threads, count, [&](int64_t task, int worker) {
        if (worker < 0 || worker >= threads) bad_worker.fetch_add(1);
        runs[static_cast<size_t>(task)].fetch_add(1);
      });
      // Read after Run returned: every task has finished by then.
      for (int64_t i = 0; i < count; ++i) {
        EXPECT_EQ(runs[static_cast<size_t>(i)].load(), 1)
            << threads << " threads, " << count << " tasks, task " << i;
      }
      EXPECT_EQ(bad_worker.load(), 0);
    }
  }
}

// The caller's task waits until a helper has claimed one, and the helper's
// task is still running when the caller has nothing left: Run must wait for
// it (a claimed task), and must not deadlock.
TEST(TilePoolTest, WaitsForTasksHelpersClaimed) {
  TilePool pool;
  for (int round = 0; round < 5; ++round) {
    absl::Notification helper_started;
    std::atomic<int> finished{0};
    pool.Run(2, 2, [&](int64_t, int worker) {
      if (worker == 0) {
        helper_started.WaitForNotificationWithTimeout(absl::Seconds(30));
      } else {
        helper_started.Notify();
        absl::SleepFor(absl::Milliseconds(50));
      }
      finished.fetch_add(1);
    });
    EXPECT_EQ(finished.load(), 2) << "round " << round;
  }
}

// Executors on different threads run at once, each on its own pool.
TEST(TilePoolTest, EachThreadHasItsOwnPool) {
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> callers;
  std::vector<TilePool*> pools(3, nullptr);
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&, c] {
      TilePool& pool = TilePool::ForThisThread();
      pools[static_cast<size_t>(c)] = &pool;
      for (int round = 0; round < 20; ++round) {
        pool.Run(2, 10, [&](int64_t task, int) { sum.fetch_add(task); });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(sum.load(), 3 * 20 * 45);
  EXPECT_NE(pools[0], pools[1]);
  EXPECT_NE(pools[1], pools[2]);
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
