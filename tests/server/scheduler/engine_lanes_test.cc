// EngineLanes, and schedulers of two models sharing one lane: the engine
// runs on the lane's thread, one batch at a time. Every wait is bounded.

#include "server/batching/engine_lanes.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/batching/scheduler.h"
#include "testing.h"

namespace sepconv {
namespace {

using testing::FakeClock;
using testing::FakeEngine;
using testing::FakeExecutor;
using testing::kTestTimeout;
using testing::RunRecord;
using testing::TestRequest;

std::thread::id LaneThread(EngineLanes& lanes, int lane) {
  std::thread::id id;
  lanes.Run(lane, [&] { id = std::this_thread::get_id(); });
  return id;
}

// Polls `lanes.Waiting(lane)` until it is `n`; false after kTestTimeout.
bool AwaitWaiting(EngineLanes& lanes, int lane, int n) {
  const absl::Time give_up = absl::Now() + kTestTimeout;
  while (lanes.Waiting(lane) != n) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(EngineLanesTest, EachLaneRunsItsCallsOnOneThreadOfItsOwn) {
  EngineLanes lanes;
  const std::thread::id lane0 = LaneThread(lanes, 0);
  EXPECT_NE(lane0, std::this_thread::get_id());
  EXPECT_EQ(LaneThread(lanes, 0), lane0);
  std::thread::id from_other_caller;
  std::thread([&] { from_other_caller = LaneThread(lanes, 0); }).join();
  EXPECT_EQ(from_other_caller, lane0);
  const std::thread::id lane1 = LaneThread(lanes, 1);
  EXPECT_NE(lane1, lane0);
  EXPECT_NE(lane1, std::this_thread::get_id());
}

TEST(EngineLanesTest, ALaneRunsOneCallAtATimeInOrder) {
  EngineLanes lanes;
  absl::Notification first_entered, release_first;
  std::vector<int> order;  // written on the lane only
  std::thread first([&] {
    lanes.Run(0, [&] {
      first_entered.Notify();
      release_first.WaitForNotificationWithTimeout(kTestTimeout);
      order.push_back(1);
    });
  });
  ASSERT_TRUE(first_entered.WaitForNotificationWithTimeout(kTestTimeout));
  std::thread second([&] { lanes.Run(0, [&] { order.push_back(2); }); });
  // The second call is queued behind the first, which holds the lane.
  ASSERT_TRUE(AwaitWaiting(lanes, 0, 1));
  release_first.Notify();
  first.join();
  second.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(lanes.Waiting(0), 0);
}

// Two models' schedulers (one worker each) on one lane: their executors are
// made and run on the lane's thread, and one model's batch waits for the
// other's to finish instead of running beside it, a wait counted as queue
// time, not compute.
TEST(EngineLanesTest, ModelsSharingALaneTakeTurnsOnItsThread) {
  FakeClock clock;
  EngineLanes lanes;
  const std::thread::id lane = LaneThread(lanes, 0);
  FakeEngine engine;
  std::vector<std::thread::id> made_on;
  auto factory = [&]() -> absl::StatusOr<std::unique_ptr<Executor>> {
    made_on.push_back(std::this_thread::get_id());
    return std::make_unique<FakeExecutor>(&engine);
  };
  SchedulerOptions options;
  options.max_batch_size = 0;
  options.lanes = &lanes;
  options.clock = &clock;
  absl::StatusOr<std::unique_ptr<Scheduler>> a = Scheduler::Create(options, factory, nullptr);
  absl::StatusOr<std::unique_ptr<Scheduler>> b = Scheduler::Create(options, factory, nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(made_on, (std::vector<std::thread::id>{lane, lane}));

  engine.CloseGate();
  TestRequest first({1, 3, 4, 4}, 1), second({1, 3, 4, 4}, 2);
  ASSERT_TRUE((*a)->Submit(first.Job()).ok());
  ASSERT_TRUE(engine.WaitForEntered(1));
  std::unique_ptr<InferenceJob> job = second.Job();
  auto times = std::make_shared<JobTimes>();
  job->times = times;
  ASSERT_TRUE((*b)->Submit(std::move(job)).ok());
  // b's worker has taken its job and handed it to the lane, where it waits.
  ASSERT_TRUE(AwaitWaiting(lanes, 0, 1));
  EXPECT_EQ(engine.entered(), 1);
  clock.Advance(absl::Milliseconds(5));
  engine.OpenGate();
  for (TestRequest* request : {&first, &second}) {
    std::optional<absl::Status> status = request->Wait();
    ASSERT_TRUE(status.has_value()) << "done was never called";
    EXPECT_TRUE(status->ok()) << *status;
    EXPECT_TRUE(request->OutputIsOwn());
  }
  EXPECT_EQ(engine.max_concurrent(), 1);
  EXPECT_EQ(times->queue_time, absl::Milliseconds(5));
  EXPECT_EQ(times->compute_time, absl::ZeroDuration());
  for (const RunRecord& run : engine.runs()) EXPECT_EQ(run.thread, lane);
  (*a)->Shutdown(absl::InfiniteFuture());
  (*b)->Shutdown(absl::InfiniteFuture());
}

}  // namespace
}  // namespace sepconv
