// The Scheduler with its threads, against a fake engine and a fake clock.
// Every wait is bounded (kTestTimeout); "nothing happened yet" checks give the
// scheduler real time to misbehave before looking.

#include "server/batching/scheduler.h"

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "testing.h"

namespace sepconv {
namespace {

using testing::FakeClock;
using testing::FakeEngine;
using testing::FakeFactory;
using testing::RecordingMetrics;
using testing::RunRecord;
using testing::TestRequest;

constexpr Dims4 kShape{1, 3, 4, 4};
constexpr Dims4 kOtherShape{1, 3, 6, 6};

Dims4 WithN(Dims4 shape, int64_t n) {
  shape.n = n;
  return shape;
}

// Long enough for a wrongly eager scheduler to act.
void LetSchedulerRun() { absl::SleepFor(absl::Milliseconds(30)); }

class SchedulerTest : public ::testing::Test {
 protected:
  // These tests pin the fixed max_queue_delay policy; adaptive_delay_test.cc
  // covers the adaptive one.
  std::unique_ptr<Scheduler> Make(SchedulerOptions options) {
    options.clock = &clock_;
    options.adaptive_queue_delay = false;
    absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
        Scheduler::Create(options, FakeFactory(&engine_), metrics_);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return scheduler.ok() ? *std::move(scheduler) : nullptr;
  }

  // Submits a job of max_batch_size samples (so it runs alone, at once) and
  // waits until it holds the only worker inside a closed gate.
  void OccupyWorker(Scheduler& scheduler, int max_batch_size) {
    engine_.CloseGate();
    const int entered_before = engine_.entered();
    blocker_ = std::make_unique<TestRequest>(WithN(kShape, std::max(1, max_batch_size)), 999);
    ASSERT_TRUE(scheduler.Submit(blocker_->Job()).ok());
    ASSERT_TRUE(engine_.WaitForEntered(entered_before + 1));
  }

  // A scheduler that batches up to max_batch_size samples with no queue
  // delay, its only worker held by blocker_ (OccupyWorker): what a test
  // submits next stays queued until engine_.OpenGate().
  std::unique_ptr<Scheduler> MakeWithBusyWorker(int max_batch_size) {
    SchedulerOptions options;
    options.max_batch_size = max_batch_size;
    options.max_queue_delay = absl::ZeroDuration();
    std::unique_ptr<Scheduler> scheduler = Make(options);
    if (scheduler != nullptr) OccupyWorker(*scheduler, max_batch_size);
    return scheduler;
  }

  // Runs after the blocker (the first run), in order.
  std::vector<RunRecord> RunsAfterBlocker() {
    std::vector<RunRecord> runs = engine_.runs();
    if (!runs.empty()) runs.erase(runs.begin());
    return runs;
  }

  static void ExpectOk(TestRequest& request) {
    std::optional<absl::Status> status = request.Wait();
    ASSERT_TRUE(status.has_value()) << "done was never called";
    EXPECT_TRUE(status->ok()) << *status;
    EXPECT_TRUE(request.OutputIsOwn());
  }

  static void ExpectCode(TestRequest& request, absl::StatusCode code) {
    std::optional<absl::Status> status = request.Wait();
    ASSERT_TRUE(status.has_value()) << "done was never called";
    EXPECT_EQ(status->code(), code) << *status;
  }

  bool EngineSaw(const TestRequest& request) {
    for (const RunRecord& run : engine_.runs()) {
      for (const float* input : run.inputs) {
        if (input == request.input()) return true;
      }
    }
    return false;
  }

  FakeClock clock_;
  FakeEngine engine_;
  std::shared_ptr<RecordingMetrics> metrics_ = std::make_shared<RecordingMetrics>();
  std::unique_ptr<TestRequest> blocker_;
};

TEST_F(SchedulerTest, FormsBatchWhenFull) {
  SchedulerOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Hours(1);
  auto scheduler = Make(options);
  std::vector<std::unique_ptr<TestRequest>> requests;
  for (int i = 0; i < 4; ++i) {
    if (i == 3) {
      LetSchedulerRun();
      EXPECT_EQ(engine_.entered(), 0) << "ran before the batch was full";
    }
    requests.push_back(std::make_unique<TestRequest>(kShape, i));
    ASSERT_TRUE(scheduler->Submit(requests.back()->Job()).ok());
  }
  for (auto& request : requests) ExpectOk(*request);
  ASSERT_EQ(engine_.runs().size(), 1u);
  EXPECT_EQ(engine_.runs()[0].chw, WithN(kShape, 4));
  EXPECT_EQ(engine_.runs()[0].samples, (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST_F(SchedulerTest, FormsBatchWhenTheDelayPasses) {
  SchedulerOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Milliseconds(5);
  auto scheduler = Make(options);
  TestRequest a(kShape, 1), b(kShape, 2), c(kShape, 3);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  clock_.Advance(absl::Milliseconds(4));
  ASSERT_TRUE(scheduler->Submit(c.Job()).ok());
  LetSchedulerRun();
  EXPECT_EQ(engine_.entered(), 0) << "ran before the oldest job waited max_queue_delay";
  clock_.Advance(absl::Milliseconds(1));
  ExpectOk(a);
  ExpectOk(b);
  ExpectOk(c);
  ASSERT_EQ(engine_.runs().size(), 1u);
  EXPECT_EQ(engine_.runs()[0].samples.size(), 3u);
}

TEST_F(SchedulerTest, PreferredBatchSizeRunsWithoutWaiting) {
  SchedulerOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = absl::Hours(1);
  options.preferred_batch_sizes = {3};
  auto scheduler = Make(options);
  TestRequest a(kShape, 1), b(WithN(kShape, 2), 2);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  LetSchedulerRun();
  EXPECT_EQ(engine_.entered(), 0);
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  ExpectOk(a);
  ExpectOk(b);
  ASSERT_EQ(engine_.runs().size(), 1u);
  EXPECT_EQ(engine_.runs()[0].chw.n, 3);
}

TEST_F(SchedulerTest, MixedShapesAreNeverMixedInOneBatch) {
  auto scheduler = MakeWithBusyWorker(8);
  std::vector<std::unique_ptr<TestRequest>> requests;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(std::make_unique<TestRequest>(i % 2 == 0 ? kShape : kOtherShape, i));
    ASSERT_TRUE(scheduler->Submit(requests.back()->Job()).ok());
  }
  engine_.OpenGate();
  for (auto& request : requests) ExpectOk(*request);
  std::vector<RunRecord> runs = RunsAfterBlocker();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].chw, WithN(kShape, 3));  // the oldest job's shape first
  EXPECT_EQ(runs[1].chw, WithN(kOtherShape, 3));
  for (const RunRecord& run : runs) {
    for (size_t i = 0; i < run.inputs.size(); ++i) {
      bool found = false;
      for (auto& request : requests) {
        if (request->input() == run.inputs[i]) {
          found = true;
          EXPECT_EQ(WithN(request->dims(), run.chw.n), run.chw) << "shape mixed into a batch";
        }
      }
      EXPECT_TRUE(found);
    }
  }
}

TEST_F(SchedulerTest, MultiSampleRequestsEachGetTheirOwnSlice) {
  auto scheduler = MakeWithBusyWorker(8);
  TestRequest a(WithN(kShape, 1), 1), b(WithN(kShape, 3), 2), c(WithN(kShape, 2), 3);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(c.Job()).ok());
  engine_.OpenGate();
  ExpectOk(a);
  ExpectOk(b);
  ExpectOk(c);
  std::vector<RunRecord> runs = RunsAfterBlocker();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].chw.n, 6);
  EXPECT_EQ(runs[0].samples, (std::vector<int64_t>{1, 3, 2}));
}

TEST_F(SchedulerTest, OversizeRequestRunsAlone) {
  auto scheduler = MakeWithBusyWorker(4);
  TestRequest small1(kShape, 1), big(WithN(kShape, 7), 2), small2(kShape, 3);
  ASSERT_TRUE(scheduler->Submit(small1.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(big.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(small2.Job()).ok());
  engine_.OpenGate();
  ExpectOk(small1);
  ExpectOk(big);
  ExpectOk(small2);
  std::vector<RunRecord> runs = RunsAfterBlocker();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].samples, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(runs[1].samples, (std::vector<int64_t>{7}));
}

TEST_F(SchedulerTest, MaxBatchSizeZeroDisablesBatching) {
  SchedulerOptions options;
  options.max_batch_size = 0;
  auto scheduler = Make(options);
  OccupyWorker(*scheduler, 0);
  std::vector<std::unique_ptr<TestRequest>> requests;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(std::make_unique<TestRequest>(kShape, i));
    ASSERT_TRUE(scheduler->Submit(requests.back()->Job()).ok());
  }
  engine_.OpenGate();
  for (auto& request : requests) ExpectOk(*request);
  std::vector<RunRecord> runs = RunsAfterBlocker();
  ASSERT_EQ(runs.size(), 3u);
  for (const RunRecord& run : runs) EXPECT_EQ(run.samples.size(), 1u);
}

// A job's done writes its answer, which costs about as much as computing
// it: a worker with work queued must not write answers before computing.
// A's done returns only once B is finished; a worker that ran A's done
// itself would never compute B.
TEST_F(SchedulerTest, AWorkerWithWorkQueuedComputesWhileTheAnswersAreWritten) {
  SchedulerOptions options;
  options.max_batch_size = 0;
  auto scheduler = Make(options);
  OccupyWorker(*scheduler, 0);
  TestRequest a(kShape, 1), b(kShape, 2);
  std::unique_ptr<InferenceJob> job_a = a.Job();
  std::atomic<bool> b_finished_first{false};
  job_a->done = [&, inner = std::move(job_a->done)](absl::Status status) mutable {
    b_finished_first = b.Wait().has_value();
    inner(std::move(status));
  };
  ASSERT_TRUE(scheduler->Submit(std::move(job_a)).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  engine_.OpenGate();
  ExpectOk(a);
  ExpectOk(b);
  EXPECT_TRUE(b_finished_first) << "B was computed only after A's answer was written";
}

// With nothing queued the worker answers itself: a lone request pays no
// handoff to another thread.
TEST_F(SchedulerTest, ALoneJobIsAnsweredOnTheWorker) {
  auto scheduler = Make(SchedulerOptions{});
  std::thread::id answered_on;
  TestRequest request(kShape, 3);
  std::unique_ptr<InferenceJob> job = request.Job();
  job->done = [&, inner = std::move(job->done)](absl::Status status) mutable {
    answered_on = std::this_thread::get_id();
    inner(std::move(status));
  };
  ASSERT_TRUE(scheduler->Submit(std::move(job)).ok());
  clock_.Advance(absl::Milliseconds(1));  // past max_queue_delay
  ExpectOk(request);
  ASSERT_EQ(engine_.runs().size(), 1u);
  EXPECT_EQ(answered_on, engine_.runs()[0].thread);
}

TEST_F(SchedulerTest, FullQueueIsRejectedAtOnce) {
  SchedulerOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::ZeroDuration();
  options.max_queue_size = 2;
  auto scheduler = Make(options);
  OccupyWorker(*scheduler, options.max_batch_size);
  TestRequest a(kShape, 1), b(kShape, 2), rejected(kShape, 3);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  EXPECT_EQ(scheduler->queued(), 2);
  const absl::Status status = scheduler->Submit(rejected.Job());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  engine_.OpenGate();
  ExpectOk(a);
  ExpectOk(b);
  EXPECT_EQ(rejected.done_calls(), 0);
}

TEST_F(SchedulerTest, ExpiredJobIsDroppedWhileWorkersAreBusy) {
  auto scheduler = MakeWithBusyWorker(4);
  TestRequest expiring(kShape, 1), patient(kShape, 2);
  ASSERT_TRUE(scheduler->Submit(expiring.Job(clock_.Now() + absl::Seconds(1))).ok());
  ASSERT_TRUE(scheduler->Submit(patient.Job()).ok());
  clock_.Advance(absl::Seconds(1));
  // The worker is still held in the engine: the reaper must answer.
  ExpectCode(expiring, absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(patient.finished());
  engine_.OpenGate();
  ExpectOk(patient);
  EXPECT_FALSE(EngineSaw(expiring));
}

TEST_F(SchedulerTest, JobExpiredOnArrivalIsNeverComputed) {
  auto scheduler = Make(SchedulerOptions{});
  TestRequest late(kShape, 1);
  ASSERT_TRUE(scheduler->Submit(late.Job(clock_.Now())).ok());
  ExpectCode(late, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(engine_.entered(), 0);
}

// Cancel is an event: no clock advance, no polling, the job ends at once.
TEST_F(SchedulerTest, CancelFinishesAQueuedJobAtOnceUncomputed) {
  auto scheduler = MakeWithBusyWorker(4);
  TestRequest cancelling(kShape, 1), other(kShape, 2);
  ASSERT_TRUE(scheduler->Submit(cancelling.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(other.Job()).ok());
  EXPECT_EQ(scheduler->queued(), 2);
  EXPECT_EQ(metrics_->pending(), 2);  // the running blocker left the gauge
  scheduler->Cancel(cancelling.id());
  // Finished before Cancel returned, on this thread.
  ASSERT_TRUE(cancelling.finished());
  EXPECT_EQ(cancelling.done_calls(), 1);
  ExpectCode(cancelling, absl::StatusCode::kCancelled);
  EXPECT_EQ(scheduler->queued(), 1);
  EXPECT_EQ(metrics_->pending(), 1);
  engine_.OpenGate();
  ExpectOk(other);
  ExpectOk(*blocker_);
  EXPECT_FALSE(EngineSaw(cancelling));
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(metrics_->pending(), 0);
  EXPECT_EQ(metrics_->min_pending(), 0);
  EXPECT_EQ(cancelling.done_calls(), 1);
}

TEST_F(SchedulerTest, CancelOfARunningJobLetsItCompleteNormally) {
  SchedulerOptions options;
  options.max_batch_size = 4;
  auto scheduler = Make(options);
  OccupyWorker(*scheduler, options.max_batch_size);  // blocker_ is running
  scheduler->Cancel(blocker_->id());
  LetSchedulerRun();
  EXPECT_FALSE(blocker_->finished());
  engine_.OpenGate();
  ExpectOk(*blocker_);
  scheduler->Cancel(blocker_->id());  // finished: still a no-op
  EXPECT_EQ(blocker_->done_calls(), 1);
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(metrics_->pending(), 0);
}

// The times go into the JobTimes the job shares, which outlives the job
// (the core's done reads them through its own share, not through the job).
TEST_F(SchedulerTest, RecordsTimesInTheJobTimesItShares) {
  auto scheduler = MakeWithBusyWorker(4);
  TestRequest queued(kShape, 1);
  std::unique_ptr<InferenceJob> job = queued.Job();
  auto times = std::make_shared<JobTimes>();
  job->times = times;
  ASSERT_TRUE(scheduler->Submit(std::move(job)).ok());
  clock_.Advance(absl::Milliseconds(3));
  engine_.OpenGate();
  ExpectOk(queued);
  ExpectOk(*blocker_);  // its job had no times: nothing recorded, no crash
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(times.use_count(), 1);  // the job is gone
  EXPECT_EQ(times->queue_time, absl::Milliseconds(3));
}

TEST_F(SchedulerTest, CancelOfAnUnknownIdDoesNothing) {
  auto scheduler = MakeWithBusyWorker(4);
  TestRequest queued(kShape, 1), never(kShape, 2);
  ASSERT_TRUE(scheduler->Submit(queued.Job()).ok());
  scheduler->Cancel(never.id());
  scheduler->Cancel(0);
  EXPECT_EQ(scheduler->queued(), 1);
  EXPECT_FALSE(queued.finished());
  EXPECT_FALSE(never.finished());
  engine_.OpenGate();
  ExpectOk(queued);
  EXPECT_FALSE(never.finished());
}

// Cancels racing the worker taking and completing the jobs: a worker takes
// jobs from the head of the queue while another thread cancels them from the
// tail; where they meet the two race. Every job is done exactly once, either
// OK (computed) or CANCELLED (not computed), and the pending gauge ends at 0
// without going below. Many rounds, each a fresh scheduler.
TEST_F(SchedulerTest, CancelRacingCompletionFinishesEachJobOnce) {
  constexpr int kRounds = 20;
  constexpr int kJobs = 100;
  int cancelled = 0, computed = 0;
  // Every round's requests stay alive to the end, so no input address is
  // reused and EngineSaw cannot confuse rounds.
  std::vector<std::vector<std::unique_ptr<TestRequest>>> rounds(kRounds);
  std::vector<std::unique_ptr<TestRequest>> blockers;
  for (int round = 0; round < kRounds; ++round) {
    auto scheduler = MakeWithBusyWorker(2);
    std::vector<std::unique_ptr<TestRequest>>& requests = rounds[round];
    for (int i = 0; i < kJobs; ++i) {
      requests.push_back(std::make_unique<TestRequest>(kShape, i));
      ASSERT_TRUE(scheduler->Submit(requests.back()->Job()).ok());
    }
    std::thread canceller([&] {
      for (int i = kJobs - 1; i >= 0; --i) scheduler->Cancel(requests[i]->id());
    });
    engine_.OpenGate();
    canceller.join();
    for (auto& request : requests) {
      std::optional<absl::Status> status = request->Wait();
      ASSERT_TRUE(status.has_value()) << "done was never called";
      if (status->ok()) {
        EXPECT_TRUE(request->OutputIsOwn());
        ++computed;
      } else {
        EXPECT_EQ(status->code(), absl::StatusCode::kCancelled) << *status;
        EXPECT_FALSE(EngineSaw(*request));
        ++cancelled;
      }
    }
    for (auto& request : requests) scheduler->Cancel(request->id());  // all done: no-ops
    scheduler->Shutdown(absl::InfiniteFuture());
    for (auto& request : requests) EXPECT_EQ(request->done_calls(), 1);
    EXPECT_EQ(metrics_->pending(), 0);
    EXPECT_EQ(metrics_->min_pending(), 0);
    blockers.push_back(std::move(blocker_));
  }
  EXPECT_EQ(cancelled + computed, kRounds * kJobs);
  RecordProperty("cancelled", cancelled);
  RecordProperty("computed", computed);
}

TEST_F(SchedulerTest, ShutdownDrainsQueuedJobsThenRejects) {
  SchedulerOptions options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::Hours(1);  // draining must not wait for it
  auto scheduler = Make(options);
  OccupyWorker(*scheduler, options.max_batch_size);
  std::vector<std::unique_ptr<TestRequest>> accepted;
  for (int i = 0; i < 3; ++i) {
    accepted.push_back(std::make_unique<TestRequest>(kShape, i));
    ASSERT_TRUE(scheduler->Submit(accepted.back()->Job()).ok());
  }
  std::thread shutdown([&] { scheduler->Shutdown(absl::InfiniteFuture()); });
  // Submit until Shutdown has begun; whatever got in must still be served.
  absl::Status status;
  const absl::Time give_up = absl::Now() + testing::kTestTimeout;
  while (absl::Now() < give_up) {
    accepted.push_back(std::make_unique<TestRequest>(kShape, 100 + accepted.size()));
    status = scheduler->Submit(accepted.back()->Job());
    if (!status.ok()) {
      accepted.pop_back();
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  engine_.OpenGate();
  shutdown.join();
  ExpectOk(*blocker_);
  for (auto& request : accepted) ExpectOk(*request);
  TestRequest after(kShape, 7);
  EXPECT_EQ(scheduler->Submit(after.Job()).code(), absl::StatusCode::kUnavailable);
  scheduler->Shutdown(absl::InfiniteFuture());  // idempotent
}

TEST_F(SchedulerTest, ShutdownDeadlineFailsWhatIsStillQueued) {
  auto scheduler = MakeWithBusyWorker(2);
  TestRequest a(kShape, 1), b(kShape, 2);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  const absl::Time shutdown_deadline = clock_.Now() + absl::Seconds(5);
  std::thread shutdown([&] { scheduler->Shutdown(shutdown_deadline); });
  LetSchedulerRun();
  EXPECT_FALSE(a.finished()) << "failed before the shutdown deadline";
  clock_.Advance(absl::Seconds(5));
  ExpectCode(a, absl::StatusCode::kUnavailable);
  ExpectCode(b, absl::StatusCode::kUnavailable);
  EXPECT_FALSE(blocker_->finished());  // the running batch is not abandoned
  engine_.OpenGate();
  shutdown.join();
  ExpectOk(*blocker_);
  EXPECT_FALSE(EngineSaw(a));
}

TEST_F(SchedulerTest, DestructorFailsQueuedJobs) {
  SchedulerOptions options;
  options.max_queue_delay = absl::Hours(1);
  auto scheduler = Make(options);
  TestRequest waiting(kShape, 1);
  ASSERT_TRUE(scheduler->Submit(waiting.Job()).ok());
  scheduler.reset();
  ExpectCode(waiting, absl::StatusCode::kUnavailable);
  EXPECT_EQ(waiting.done_calls(), 1);
}

TEST_F(SchedulerTest, EngineErrorReachesEveryJobOfTheBatch) {
  SchedulerOptions options;
  options.max_batch_size = 3;
  options.max_queue_delay = absl::Hours(1);
  auto scheduler = Make(options);
  engine_.FailWith(absl::InternalError("oneDNN fell over"));
  std::vector<std::unique_ptr<TestRequest>> requests;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(std::make_unique<TestRequest>(kShape, i));
    ASSERT_TRUE(scheduler->Submit(requests.back()->Job()).ok());
  }
  for (auto& request : requests) {
    std::optional<absl::Status> status = request->Wait();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(*status, absl::InternalError("oneDNN fell over"));
  }
  EXPECT_EQ(engine_.runs().size(), 1u);
}

TEST_F(SchedulerTest, InstancesRunConcurrently) {
  SchedulerOptions options;
  options.max_batch_size = 1;
  options.instances = 2;
  auto scheduler = Make(options);
  engine_.CloseGate();
  TestRequest a(kShape, 1), b(kShape, 2);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  EXPECT_TRUE(engine_.WaitForEntered(2)) << "the second instance did not start a batch";
  EXPECT_EQ(engine_.max_concurrent(), 2);
  engine_.OpenGate();
  ExpectOk(a);
  ExpectOk(b);
}

TEST_F(SchedulerTest, RecordsMetrics) {
  SchedulerOptions options;
  options.max_batch_size = 2;
  options.max_queue_delay = absl::Hours(1);
  auto scheduler = Make(options);
  TestRequest a(kShape, 1), b(WithN(kShape, 1), 2), expired(kShape, 3);
  ASSERT_TRUE(scheduler->Submit(a.Job()).ok());
  ASSERT_TRUE(scheduler->Submit(b.Job()).ok());
  ExpectOk(a);
  ExpectOk(b);
  ASSERT_TRUE(scheduler->Submit(expired.Job(clock_.Now())).ok());
  ExpectCode(expired, absl::StatusCode::kDeadlineExceeded);
  scheduler->Shutdown(absl::InfiniteFuture());
  EXPECT_EQ(metrics_->pending(), 0);
  EXPECT_GE(metrics_->min_pending(), 0);
  EXPECT_EQ(metrics_->queue_times(), 2);
  EXPECT_EQ(metrics_->executions(), 1);
  EXPECT_EQ(metrics_->samples(), 2);
  EXPECT_EQ(metrics_->flops(), 2 * 2 * kShape.c * kShape.h * kShape.w);
}

TEST_F(SchedulerTest, CreateReportsFactoryFailureAndBadOptions) {
  auto failing = []() -> absl::StatusOr<std::unique_ptr<Executor>> {
    return absl::ResourceExhaustedError("no memory for primitives");
  };
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(SchedulerOptions{}, failing, nullptr);
  EXPECT_EQ(scheduler.status(), absl::ResourceExhaustedError("no memory for primitives"));

  SchedulerOptions bad;
  bad.instances = 0;
  scheduler = Scheduler::Create(bad, FakeFactory(&engine_), nullptr);
  EXPECT_EQ(scheduler.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, RejectsMalformedJobs) {
  auto scheduler = Make(SchedulerOptions{});
  EXPECT_EQ(scheduler->Submit(nullptr).code(), absl::StatusCode::kInvalidArgument);
  TestRequest request(kShape, 1);
  auto job = request.Job();
  job->dims.n = 0;
  EXPECT_EQ(scheduler->Submit(std::move(job)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, WorksWithoutMetricsAndWithRealTime) {
  SchedulerOptions options;
  options.max_batch_size = 5;
  options.max_queue_delay = absl::Hours(1);  // only full batches run
  options.adaptive_queue_delay = false;
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(options, FakeFactory(&engine_), nullptr);
  ASSERT_TRUE(scheduler.ok());
  std::vector<std::unique_ptr<TestRequest>> requests;
  for (int i = 0; i < 10; ++i) {
    requests.push_back(std::make_unique<TestRequest>(kShape, i));
    ASSERT_TRUE((*scheduler)->Submit(requests.back()->Job()).ok());
  }
  for (auto& request : requests) ExpectOk(*request);
  EXPECT_EQ(engine_.runs().size(), 2u);
}

// With real time and an hour-long delay, only a wake-up from Submit can start
// these batches.
TEST_F(SchedulerTest, RealTimeWakesForPreferredSizeAndForJobsThatDoNotFit) {
  SchedulerOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay = absl::Hours(1);
  options.adaptive_queue_delay = false;
  options.preferred_batch_sizes = {2};
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(options, FakeFactory(&engine_), nullptr);
  ASSERT_TRUE(scheduler.ok());
  TestRequest a(kShape, 1), b(kShape, 2);
  ASSERT_TRUE((*scheduler)->Submit(a.Job()).ok());
  ASSERT_TRUE((*scheduler)->Submit(b.Job()).ok());
  ExpectOk(a);  // preferred size 2
  ExpectOk(b);
  TestRequest c(WithN(kShape, 3), 3), d(WithN(kShape, 3), 4);
  ASSERT_TRUE((*scheduler)->Submit(c.Job()).ok());
  ASSERT_TRUE((*scheduler)->Submit(d.Job()).ok());
  ExpectOk(c);  // d does not fit next to c: c starts without waiting
  EXPECT_FALSE(d.finished());
  scheduler->reset();
  ExpectCode(d, absl::StatusCode::kUnavailable);
  EXPECT_FALSE(EngineSaw(d));
}

}  // namespace
}  // namespace sepconv
