// The adaptive queue delay (SchedulerOptions::adaptive_queue_delay): on the
// BatchQueue with explicit times, and through the Scheduler with the fake
// clock. A lone request never waits for batch-mates; a batch waits only while
// arrivals outpace the engine and are expected to fill it within
// max_queue_delay; the hold is measured and reported; batches form only
// while a batched sample costs less than a lone one.

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "server/batching/internal/batch_queue.h"
#include "server/batching/scheduler.h"
#include "testing.h"

namespace sepconv {
namespace {

using internal::BatchQueue;
using internal::QueuedJob;
using testing::FakeClock;
using testing::FakeEngine;
using testing::FakeFactory;
using testing::RecordingMetrics;
using testing::TestRequest;

const absl::Time kT0 = absl::FromUnixSeconds(1000);
constexpr Dims4 kShape{1, 4, 3, 3};
constexpr absl::Duration kUs = absl::Microseconds(1);

SchedulerOptions Adaptive(int max_batch, absl::Duration delay) {
  SchedulerOptions options;
  options.max_batch_size = max_batch;
  options.max_queue_delay = delay;
  options.adaptive_queue_delay = true;
  return options;
}

class AdaptiveQueueTest : public ::testing::Test {
 protected:
  const InferenceJob* Push(BatchQueue& queue, absl::Time at, int64_t n = 1) {
    auto job = std::make_unique<InferenceJob>();
    job->dims = kShape;
    job->dims.n = n;
    job->done = [](absl::Status) {};
    const InferenceJob* id = job.get();
    queue.Push(std::move(job), at);
    return id;
  }

  // `count` jobs pushed at `at`, in order.
  std::vector<const InferenceJob*> PushMany(BatchQueue& queue, absl::Time at, int count) {
    std::vector<const InferenceJob*> jobs;
    for (int i = 0; i < count; ++i) jobs.push_back(Push(queue, at));
    return jobs;
  }

  // The jobs of the batch ready at `now` (empty if none); `*retry_at` as
  // TakeBatch sets it.
  std::vector<const InferenceJob*> Take(BatchQueue& queue, absl::Time now,
                                        absl::Time* retry_at = nullptr) {
    std::vector<QueuedJob> batch;
    absl::Time retry;
    const bool ready = queue.TakeBatch(now, /*draining=*/false, &batch, &retry);
    EXPECT_EQ(ready, !batch.empty());
    if (retry_at != nullptr) *retry_at = retry;
    std::vector<const InferenceJob*> ids;
    for (const QueuedJob& queued : batch) ids.push_back(queued.job.get());
    return ids;
  }

  // History for the running means: arrivals every `gap` from `*t`, each
  // computed in `compute` (taken as when draining, whatever the policy would
  // say); `*t` ends one gap after the last.
  void Warm(BatchQueue& queue, absl::Time* t, absl::Duration gap, absl::Duration compute,
            int arrivals) {
    for (int i = 0; i < arrivals; ++i) {
      Push(queue, *t);
      std::vector<QueuedJob> batch;
      absl::Time retry;
      ASSERT_TRUE(queue.TakeBatch(*t, /*draining=*/true, &batch, &retry));
      queue.RecordCompute(compute, 1);
      *t += gap;
    }
  }
};

using Ids = std::vector<const InferenceJob*>;

TEST_F(AdaptiveQueueTest, LoneJobWithoutHistoryStartsAtOnce) {
  BatchQueue queue(Adaptive(8, absl::Hours(1)));
  const InferenceJob* job = Push(queue, kT0);
  EXPECT_EQ(Take(queue, kT0), (Ids{job}));
  EXPECT_EQ(queue.last_hold(), absl::ZeroDuration());
}

TEST_F(AdaptiveQueueTest, StartsAtOnceWhileTheEngineKeepsUp) {
  // One arrival per 1 ms against 100 us of compute: closed-loop c=1.
  BatchQueue queue(Adaptive(8, absl::Milliseconds(5)));
  absl::Time t = kT0;
  Warm(queue, &t, absl::Milliseconds(1), 100 * kUs, 20);
  const InferenceJob* job = Push(queue, t);
  EXPECT_EQ(Take(queue, t), (Ids{job}));
  EXPECT_EQ(queue.last_hold(), absl::ZeroDuration());
}

TEST_F(AdaptiveQueueTest, WaitsToFillWhenArrivalsOutpaceTheEngine) {
  // Arrivals every 10 us against 500 us of compute; the batch of 4 is
  // expected full 30 us after its first job, well within the 1 ms delay.
  BatchQueue queue(Adaptive(4, absl::Milliseconds(1)));
  absl::Time t = kT0;
  Warm(queue, &t, 10 * kUs, 500 * kUs, 20);
  Ids jobs = {Push(queue, t)};
  absl::Time retry;
  EXPECT_TRUE(Take(queue, t, &retry).empty());
  EXPECT_EQ(retry, t + 30 * kUs);
  for (int i = 1; i < 4; ++i) jobs.push_back(Push(queue, t + i * 10 * kUs));
  EXPECT_TRUE(queue.MayBeReady());  // full: a waiting worker must wake
  EXPECT_EQ(Take(queue, t + 30 * kUs), jobs);
  EXPECT_EQ(queue.last_hold(), 30 * kUs);
}

TEST_F(AdaptiveQueueTest, StartsAtOnceWhenTheBatchCannotFillWithinTheDelay) {
  // Arrivals every 400 us against 2 ms of compute: filling 7 more samples
  // would take 2.8 ms, beyond the 1 ms delay.
  BatchQueue queue(Adaptive(8, absl::Milliseconds(1)));
  absl::Time t = kT0;
  Warm(queue, &t, 400 * kUs, absl::Milliseconds(2), 20);
  const InferenceJob* job = Push(queue, t);
  EXPECT_EQ(Take(queue, t), (Ids{job}));
}

TEST_F(AdaptiveQueueTest, GivesUpSoonAfterArrivalsStop) {
  // Fast arrivals, then none: each re-decision counts the silence as a gap,
  // so the batch starts once the silence is as long as one execution (1 ms),
  // long before max_queue_delay.
  const absl::Duration delay = absl::Milliseconds(10);
  BatchQueue queue(Adaptive(8, delay));
  absl::Time t = kT0;
  Warm(queue, &t, 10 * kUs, absl::Milliseconds(1), 20);
  const absl::Time first = t;
  const InferenceJob* job = Push(queue, first);
  absl::Time now = first;
  absl::Time retry;
  int decisions = 0;
  Ids batch;
  while ((batch = Take(queue, now, &retry)).empty() && decisions < 100) {
    ASSERT_GT(retry, now);
    ASSERT_LE(retry, first + delay);
    now = retry;
    ++decisions;
  }
  EXPECT_EQ(batch, (Ids{job}));
  EXPECT_GE(decisions, 1);
  EXPECT_LE(now - first, absl::Milliseconds(1)) << "waited for arrivals that had stopped";
  EXPECT_EQ(queue.last_hold(), now - first);
}

TEST_F(AdaptiveQueueTest, AnIdleSpellDoesNotSlowTheRecoveryOfTheArrivalRate) {
  // Gaps are capped at max_queue_delay: after an hour of silence, a few fast
  // arrivals are enough to make waiting worthwhile again.
  BatchQueue queue(Adaptive(4, absl::Milliseconds(1)));
  absl::Time t = kT0;
  Warm(queue, &t, 10 * kUs, 500 * kUs, 20);
  t += absl::Hours(1);
  Warm(queue, &t, 10 * kUs, 500 * kUs, 20);
  Push(queue, t);
  EXPECT_TRUE(Take(queue, t).empty());
}

TEST_F(AdaptiveQueueTest, MaxQueueDelayStaysTheBound) {
  // Arrivals outpace the engine but then stop: the hold never passes the
  // oldest job's max_queue_delay.
  const absl::Duration delay = 100 * kUs;
  BatchQueue queue(Adaptive(4, delay));
  absl::Time t = kT0;
  Warm(queue, &t, 10 * kUs, 500 * kUs, 20);
  const InferenceJob* a = Push(queue, t);
  const InferenceJob* b = Push(queue, t + 20 * kUs);
  absl::Time retry;
  EXPECT_TRUE(Take(queue, t + 20 * kUs, &retry).empty());
  EXPECT_LE(retry, t + delay);
  EXPECT_EQ(Take(queue, t + delay), (Ids{a, b}));
}

// Four queued jobs, full batch 4. Batched samples cost 1 ms as lone ones
// do: batching does not pay, so each job runs alone at once, but one
// dispatch in kBatchProbeEvery still batches.
TEST_F(AdaptiveQueueTest, BatchesOnlyWhileABatchedSampleCostsLess) {
  BatchQueue queue(Adaptive(4, absl::Milliseconds(100)));
  absl::Time t = kT0;
  Warm(queue, &t, 10 * kUs, absl::Milliseconds(1), 20);  // lone: 1 ms a sample
  EXPECT_TRUE(queue.BatchingPays()) << "unknown batched cost";
  queue.RecordCompute(absl::Milliseconds(4), 4);  // batched: 1 ms a sample
  EXPECT_FALSE(queue.BatchingPays());
  int alone = 0;
  for (int dispatch = 1; dispatch <= internal::kBatchProbeEvery; ++dispatch) {
    const Ids jobs = PushMany(queue, t, 4);
    const Ids taken = Take(queue, t);
    if (taken.size() == 1) {
      EXPECT_EQ(taken.front(), jobs.front());
      ++alone;
    } else {
      EXPECT_EQ(dispatch, internal::kBatchProbeEvery) << "batched although it does not pay";
      EXPECT_EQ(taken, jobs);
    }
    queue.TakeAll();
    t += absl::Milliseconds(1);
  }
  EXPECT_EQ(alone, internal::kBatchProbeEvery - 1);

  // Cheaper batched samples (0.5 ms): batching pays again, the next take is
  // the whole batch.
  for (int i = 0; i < 20; ++i) queue.RecordCompute(absl::Milliseconds(2), 4);
  EXPECT_TRUE(queue.BatchingPays());
  const Ids jobs = PushMany(queue, t, 4);
  EXPECT_EQ(Take(queue, t), jobs);
}

// The fixed policy (Triton's) batches whatever the costs.
TEST_F(AdaptiveQueueTest, FixedPolicyBatchesEvenWhenItDoesNotPay) {
  SchedulerOptions options = Adaptive(4, absl::Milliseconds(2));
  options.adaptive_queue_delay = false;
  BatchQueue queue(options);
  queue.RecordCompute(absl::Milliseconds(1), 1);
  queue.RecordCompute(absl::Milliseconds(8), 4);  // 2 ms a sample
  const Ids jobs = PushMany(queue, kT0, 4);
  EXPECT_EQ(Take(queue, kT0), jobs);
}

TEST_F(AdaptiveQueueTest, FixedPolicyWaitsTheDelayAndReportsTheHold) {
  SchedulerOptions options = Adaptive(8, absl::Milliseconds(2));
  options.adaptive_queue_delay = false;
  BatchQueue queue(options);
  const absl::Time t = kT0;
  const InferenceJob* job = Push(queue, t);
  absl::Time retry;
  EXPECT_TRUE(Take(queue, t, &retry).empty());
  EXPECT_EQ(retry, t + absl::Milliseconds(2));
  EXPECT_EQ(Take(queue, retry), (Ids{job}));
  EXPECT_EQ(queue.last_hold(), absl::Milliseconds(2));
}

class AdaptiveSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Scheduler> Make(SchedulerOptions options) {
    options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
        Scheduler::Create(options, FakeFactory(&engine_), metrics_);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return scheduler.ok() ? *std::move(scheduler) : nullptr;
  }

  FakeClock clock_;
  FakeEngine engine_;
  std::shared_ptr<RecordingMetrics> metrics_ = std::make_shared<RecordingMetrics>();
};

TEST_F(AdaptiveSchedulerTest, LoneRequestsRunWithoutTheClockMoving) {
  // An hour-long max_queue_delay and a clock that never moves: only the
  // adaptive policy can start these, one at a time as a closed-loop client
  // sends them (the fake engine takes no fake time).
  auto scheduler = Make(Adaptive(8, absl::Hours(1)));
  for (int i = 0; i < 5; ++i) {
    if (i > 0) clock_.Advance(absl::Milliseconds(1));  // the client's round trip
    TestRequest request(kShape, i);
    ASSERT_TRUE(scheduler->Submit(request.Job()).ok());
    std::optional<absl::Status> status = request.Wait();
    ASSERT_TRUE(status.has_value()) << "request " << i << " waited for batch-mates";
    EXPECT_TRUE(status->ok()) << *status;
    EXPECT_TRUE(request.OutputIsOwn());
  }
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(engine_.runs().size(), 5u);
  EXPECT_EQ(metrics_->holds(), std::vector<absl::Duration>(5, absl::ZeroDuration()));
}

TEST_F(AdaptiveSchedulerTest, FixedPolicyReportsHowLongItHeldTheBatch) {
  SchedulerOptions options = Adaptive(8, absl::Milliseconds(5));
  options.adaptive_queue_delay = false;
  auto scheduler = Make(options);
  TestRequest request(kShape, 1);
  const absl::Time submitted = clock_.Now();
  ASSERT_TRUE(scheduler->Submit(request.Job()).ok());
  // Time moves only once the worker holds the job for company, until 5 ms on.
  ASSERT_TRUE(clock_.AwaitWaiterFor(submitted + absl::Milliseconds(5)));
  EXPECT_FALSE(request.finished());
  clock_.Advance(absl::Milliseconds(5));
  std::optional<absl::Status> status = request.Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->ok()) << *status;
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(metrics_->holds(), std::vector<absl::Duration>{absl::Milliseconds(5)});
}

}  // namespace
}  // namespace sepconv
