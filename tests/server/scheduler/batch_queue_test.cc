// The batching policy on its own: no threads, explicit times.

#include "server/batching/internal/batch_queue.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv {
namespace internal {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);
constexpr Dims4 kShapeA{1, 4, 3, 3};
constexpr Dims4 kShapeB{1, 4, 5, 5};

class BatchQueueTest : public ::testing::Test {
 protected:
  // Queues a job of `shape` with `n` samples at `at`; returns its identity.
  const InferenceJob* Push(BatchQueue& queue, Dims4 shape, int64_t n, absl::Time at = kT0,
                           absl::Time deadline = absl::InfiniteFuture()) {
    auto job = std::make_unique<InferenceJob>();
    job->dims = shape;
    job->dims.n = n;
    job->deadline = deadline;
    job->done = [](absl::Status) {};
    job->id = reinterpret_cast<uintptr_t>(job.get());  // unique while queued
    const InferenceJob* id = job.get();
    queue.Push(std::move(job), at);
    return id;
  }

  // The identities of the next batch at `now`, empty if none is ready.
  std::vector<const InferenceJob*> Take(BatchQueue& queue, absl::Time now, bool draining = false,
                                        absl::Time* retry_at = nullptr) {
    std::vector<QueuedJob> batch;
    absl::Time retry;
    const bool ready = queue.TakeBatch(now, draining, &batch, &retry);
    if (retry_at != nullptr) *retry_at = retry;
    EXPECT_EQ(ready, !batch.empty());
    std::vector<const InferenceJob*> ids;
    for (const QueuedJob& queued : batch) ids.push_back(queued.job.get());
    return ids;
  }

  // The fixed-delay policy (adaptive_delay_test.cc covers the adaptive one).
  static SchedulerOptions Options(int max_batch, absl::Duration delay,
                                  std::vector<int> preferred = {}) {
    SchedulerOptions options;
    options.max_batch_size = max_batch;
    options.max_queue_delay = delay;
    options.adaptive_queue_delay = false;
    options.preferred_batch_sizes = std::move(preferred);
    return options;
  }
};

using Ids = std::vector<const InferenceJob*>;

TEST_F(BatchQueueTest, RunsWhenFull) {
  BatchQueue queue(Options(4, absl::Seconds(1)));
  Ids jobs;
  for (int i = 0; i < 3; ++i) jobs.push_back(Push(queue, kShapeA, 1));
  absl::Time retry;
  EXPECT_TRUE(Take(queue, kT0, false, &retry).empty());
  EXPECT_EQ(retry, kT0 + absl::Seconds(1));
  jobs.push_back(Push(queue, kShapeA, 1));
  EXPECT_EQ(Take(queue, kT0), jobs);
  EXPECT_TRUE(queue.empty());
}

TEST_F(BatchQueueTest, RunsWhenOldestWaitedTheDelay) {
  BatchQueue queue(Options(8, absl::Milliseconds(2)));
  const InferenceJob* first = Push(queue, kShapeA, 1, kT0);
  const InferenceJob* second = Push(queue, kShapeA, 2, kT0 + absl::Milliseconds(1));
  EXPECT_TRUE(Take(queue, kT0 + absl::Microseconds(1999)).empty());
  EXPECT_EQ(Take(queue, kT0 + absl::Milliseconds(2)), (Ids{first, second}));
}

TEST_F(BatchQueueTest, FullBatchLeavesTheRestQueued) {
  BatchQueue queue(Options(2, absl::Seconds(1)));
  Ids jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(Push(queue, kShapeA, 1));
  EXPECT_EQ(Take(queue, kT0), (Ids{jobs[0], jobs[1]}));
  EXPECT_EQ(Take(queue, kT0), (Ids{jobs[2], jobs[3]}));
  EXPECT_TRUE(Take(queue, kT0).empty());
  EXPECT_EQ(queue.size(), 1u);
}

TEST_F(BatchQueueTest, PreferredSizeRunsTheLargestReachedPrefixAtOnce) {
  BatchQueue queue(Options(8, absl::Seconds(1), {2, 4}));
  Ids jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(Push(queue, kShapeA, 1));
  EXPECT_EQ(Take(queue, kT0), (Ids{jobs[0], jobs[1], jobs[2], jobs[3]}));
  // One left: below every preferred size, so it waits for the delay.
  EXPECT_TRUE(Take(queue, kT0).empty());
  EXPECT_EQ(Take(queue, kT0 + absl::Seconds(1)), (Ids{jobs[4]}));
}

TEST_F(BatchQueueTest, PreferredSizeCountsSamplesNotJobs) {
  BatchQueue queue(Options(8, absl::Seconds(1), {3}));
  const InferenceJob* a = Push(queue, kShapeA, 1);
  EXPECT_TRUE(Take(queue, kT0).empty());
  const InferenceJob* b = Push(queue, kShapeA, 2);
  EXPECT_EQ(Take(queue, kT0), (Ids{a, b}));
}

TEST_F(BatchQueueTest, ShapesAreNeverMixedAndTheHeadShapeGoesFirst) {
  BatchQueue queue(Options(8, absl::ZeroDuration()));
  const InferenceJob* a1 = Push(queue, kShapeA, 1);
  const InferenceJob* b1 = Push(queue, kShapeB, 1);
  const InferenceJob* a2 = Push(queue, kShapeA, 1);
  const InferenceJob* b2 = Push(queue, kShapeB, 2);
  Dims4 other_channels = kShapeA;
  other_channels.c = 5;
  const InferenceJob* c1 = Push(queue, other_channels, 1);
  EXPECT_EQ(Take(queue, kT0), (Ids{a1, a2}));
  EXPECT_EQ(Take(queue, kT0), (Ids{b1, b2}));
  EXPECT_EQ(Take(queue, kT0), (Ids{c1}));
}

TEST_F(BatchQueueTest, OtherShapeAtTheHeadIsNotStarved) {
  // A steady stream of shape A behind one job of shape B: B runs second.
  BatchQueue queue(Options(2, absl::ZeroDuration()));
  const InferenceJob* a1 = Push(queue, kShapeA, 1);
  const InferenceJob* b = Push(queue, kShapeB, 1);
  for (int i = 0; i < 6; ++i) Push(queue, kShapeA, 1);
  EXPECT_EQ(Take(queue, kT0).front(), a1);
  EXPECT_EQ(Take(queue, kT0), (Ids{b}));
}

TEST_F(BatchQueueTest, JobThatDoesNotFitStartsTheBatchAndRunsNext) {
  BatchQueue queue(Options(4, absl::Seconds(1)));
  const InferenceJob* a = Push(queue, kShapeA, 2);
  const InferenceJob* big = Push(queue, kShapeA, 3);
  const InferenceJob* c = Push(queue, kShapeA, 1);
  // 2 + 3 > 4: waiting cannot help, so {a, c} (3 samples) starts now.
  EXPECT_EQ(Take(queue, kT0), (Ids{a, c}));
  // `big` is the head now; it waits for company or its delay.
  EXPECT_TRUE(Take(queue, kT0).empty());
  EXPECT_EQ(Take(queue, kT0 + absl::Seconds(1)), (Ids{big}));
}

TEST_F(BatchQueueTest, OversizeJobRunsAloneAtOnce) {
  BatchQueue queue(Options(4, absl::Seconds(1)));
  const InferenceJob* big = Push(queue, kShapeA, 9);
  const InferenceJob* small = Push(queue, kShapeA, 1);
  EXPECT_EQ(Take(queue, kT0), (Ids{big}));
  EXPECT_TRUE(Take(queue, kT0).empty());
  EXPECT_EQ(Take(queue, kT0 + absl::Seconds(1)), (Ids{small}));
}

TEST_F(BatchQueueTest, MaxBatchSizeZeroRunsEveryJobAlone) {
  BatchQueue queue(Options(0, absl::Seconds(1)));
  const InferenceJob* a = Push(queue, kShapeA, 1);
  const InferenceJob* b = Push(queue, kShapeA, 3);
  EXPECT_EQ(Take(queue, kT0), (Ids{a}));
  EXPECT_EQ(Take(queue, kT0), (Ids{b}));
}

TEST_F(BatchQueueTest, DrainingDoesNotWaitForTheDelay) {
  BatchQueue queue(Options(8, absl::Hours(1)));
  const InferenceJob* a = Push(queue, kShapeA, 1);
  EXPECT_TRUE(Take(queue, kT0).empty());
  EXPECT_EQ(Take(queue, kT0, /*draining=*/true), (Ids{a}));
}

TEST_F(BatchQueueTest, SweepDropsExpiredOnly) {
  BatchQueue queue(Options(8, absl::Hours(1)));
  Push(queue, kShapeA, 1, kT0, kT0 + absl::Seconds(1));  // expires
  const InferenceJob* later = Push(queue, kShapeA, 1, kT0, kT0 + absl::Seconds(5));
  const InferenceJob* forever = Push(queue, kShapeA, 1);

  std::vector<DroppedJob> dropped;
  EXPECT_EQ(queue.Sweep(kT0, &dropped), kT0 + absl::Seconds(1));
  EXPECT_TRUE(dropped.empty());
  const absl::Time earliest = queue.Sweep(kT0 + absl::Seconds(1), &dropped);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(earliest, kT0 + absl::Seconds(5));
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.samples(), 2);
  EXPECT_EQ(Take(queue, kT0, /*draining=*/true), (Ids{later, forever}));
}

TEST_F(BatchQueueTest, RemoveTakesOnlyTheNamedQueuedJob) {
  BatchQueue queue(Options(8, absl::Hours(1)));
  const InferenceJob* a = Push(queue, kShapeA, 1);
  const InferenceJob* b = Push(queue, kShapeA, 2, kT0, kT0 + absl::Seconds(1));
  const InferenceJob* c = Push(queue, kShapeA, 1);
  const uint64_t a_id = a->id;  // `a` is freed once taken below
  QueuedJob removed = queue.Remove(b->id);
  EXPECT_EQ(removed.job.get(), b);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.samples(), 2);
  EXPECT_EQ(queue.Remove(b->id).job, nullptr);  // no longer queued
  EXPECT_EQ(queue.Remove(0).job, nullptr);      // never queued
  // The removed job's deadline no longer matters to the sweep.
  std::vector<DroppedJob> dropped;
  EXPECT_EQ(queue.Sweep(kT0 + absl::Seconds(2), &dropped), absl::InfiniteFuture());
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(Take(queue, kT0, /*draining=*/true), (Ids{a, c}));
  EXPECT_EQ(queue.Remove(a_id).job, nullptr);  // taken for a batch
}

TEST_F(BatchQueueTest, MayBeReadyOnlyWhenAPushCanHaveCompletedABatch) {
  BatchQueue queue(Options(4, absl::Hours(1)));
  Push(queue, kShapeA, 1);
  EXPECT_TRUE(queue.MayBeReady());  // a new head: its delay starts
  Push(queue, kShapeB, 2);
  EXPECT_FALSE(queue.MayBeReady());
  EXPECT_EQ(queue.samples(), 3);
  Push(queue, kShapeA, 1);
  EXPECT_TRUE(queue.MayBeReady());
  EXPECT_EQ(Take(queue, kT0, /*draining=*/true).size(), 2u);  // the two of shape A
  EXPECT_EQ(queue.samples(), 2);
  queue.TakeAll();
  EXPECT_EQ(queue.samples(), 0);

  BatchQueue preferred(Options(8, absl::Hours(1), {2}));
  Push(preferred, kShapeA, 1);
  Push(preferred, kShapeA, 1);
  EXPECT_TRUE(preferred.MayBeReady());
}

TEST(ValidateSchedulerOptionsTest, RejectsBadOptions) {
  EXPECT_TRUE(ValidateSchedulerOptions(SchedulerOptions{}).ok());
  SchedulerOptions options;
  options.max_batch_size = -1;
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.preferred_batch_sizes = {9};
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.max_queue_size = 0;
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.instances = 0;
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.completion_threads = 0;
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
  options = {};
  options.max_queue_delay = -absl::Milliseconds(1);
  EXPECT_EQ(ValidateSchedulerOptions(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
