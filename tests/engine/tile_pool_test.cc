// The fused kernels' thread pool: every task runs exactly once per Run, Run
// returns only when all have run, each worker runs its own share first,
// helpers that are slow to start leave their share to the caller, each
// thread has its own pool, and helpers run off the caller's CPU.

#include "engine/internal/tile_pool.h"

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

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

// Each worker first runs its own contiguous share of the tasks in order
// (the caller [0, 4), the helper [4, 8)), then takes the last task of the
// share with most left. The caller holds its first task until the helper
// has run 7, so the helper runs its own share, then the caller's from the
// end.
TEST(TilePoolTest, EachWorkerRunsItsOwnShareFirstThenTakesFromTheEnd) {
  TilePool pool;
  std::vector<int64_t> caller_tasks, helper_tasks;  // each written by one worker
  std::atomic<int> helper_done{0};
  absl::Notification helper_finished;
  pool.Run(2, 8, [&](int64_t task, int worker) {
    if (worker == 0) {
      caller_tasks.push_back(task);
      helper_finished.WaitForNotificationWithTimeout(absl::Seconds(30));
    } else {
      helper_tasks.push_back(task);
      if (helper_done.fetch_add(1) + 1 == 7) helper_finished.Notify();
    }
  });
  // Read after Run returned: every task has finished by then.
  EXPECT_EQ(caller_tasks, std::vector<int64_t>({0}));
  EXPECT_EQ(helper_tasks, std::vector<int64_t>({4, 5, 6, 7, 3, 2, 1}));
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

// The caller held on each CPU the test may use in turn: the helper's CPUs
// leave the caller's out (it runs elsewhere at once instead of waiting for
// the caller's CPU), unless the caller's is the only one.
TEST(TilePoolTest, HelpersRunOffTheCallersCpu) {
  const std::vector<int> cpus = ::sepconv::testing::AllowedCpus();
  TilePool pool;
  pool.Run(2, 2, [](int64_t, int) {});  // starts the helper, free to run anywhere
  int tried = 0;
  for (int cpu : cpus) {
    ++tried;
    const ::sepconv::testing::OnCpu on(cpu);
    ASSERT_TRUE(on.ok());
    absl::Notification helper_ran;
    std::atomic<int> helper_cpu{-1};
    cpu_set_t helper_cpus;
    CPU_ZERO(&helper_cpus);
    pool.Run(2, 2, [&](int64_t, int worker) {
      if (worker == 0) {
        helper_ran.WaitForNotificationWithTimeout(absl::Seconds(30));
        return;
      }
      // The helper may claim both tasks (only it notifies, one task at a time).
      sched_getaffinity(0, sizeof(helper_cpus), &helper_cpus);
      helper_cpu.store(sched_getcpu());
      if (!helper_ran.HasBeenNotified()) helper_ran.Notify();
    });
    ASSERT_TRUE(helper_ran.HasBeenNotified()) << "caller on CPU " << cpu;
    if (cpus.size() > 1) {
      EXPECT_FALSE(CPU_ISSET(cpu, &helper_cpus)) << "caller on CPU " << cpu;
      EXPECT_NE(helper_cpu.load(), cpu);
    } else {
      EXPECT_TRUE(CPU_ISSET(cpu, &helper_cpus));
    }
  }
  EXPECT_GT(tried, 0);
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
