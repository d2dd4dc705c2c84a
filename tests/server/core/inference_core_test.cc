// Unit tests of server/core/inference_core over a fake scheduler the test
// drives by hand: every outcome recorded once and every failure logged once,
// the retry on a replaced version, held refusals at shutdown, cancellation,
// the deadline from the request's timeout, the allocator's error path and
// the lease a queued job holds on its model version; and ~ServedModel when
// the last lease drops on one of its own worker threads (real scheduler).

#include "server/core/inference_core.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "engine/random_model.h"
#include "server/batching/scheduler.h"
#include "server/models/model_registry.h"
#include "server/models/served_model.h"

namespace sepconv {
namespace {

using Code = absl::StatusCode;

// Counts RequestDone per status code.
class CountingMetrics final : public ModelMetrics {
 public:
  void RequestDone(absl::StatusCode code, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++done_[code];
  }
  void PendingAdd(int64_t) override {}
  void QueueTime(absl::Duration) override {}
  void BatchExecuted(int64_t, absl::Duration, const FlopCount&) override {}
  int Count(absl::StatusCode code) const {
    absl::MutexLock lock(&mu_);
    auto it = done_.find(code);
    return it == done_.end() ? 0 : it->second;
  }
  int Total() const {
    absl::MutexLock lock(&mu_);
    int total = 0;
    for (const auto& [code, n] : done_) total += n;
    return total;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<absl::StatusCode, int> done_ ABSL_GUARDED_BY(mu_);
};

// Holds submitted jobs until the test finishes them.
class FakeScheduler final : public Scheduler {
 public:
  // Runs inside Submit before it decides; returns the refusal, or OK to queue.
  std::function<absl::Status()> on_submit;

  absl::Status Submit(std::unique_ptr<InferenceJob> job) override {
    if (on_submit) {
      if (absl::Status refused = on_submit(); !refused.ok()) return refused;
    }
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::UnavailableError("stopped");
    jobs_.push_back(std::move(job));
    return absl::OkStatus();
  }
  void Shutdown(absl::Time) override {
    std::deque<std::unique_ptr<InferenceJob>> left;
    {
      absl::MutexLock lock(&mu_);
      stopped_ = true;
      left.swap(jobs_);
    }
    for (auto& job : left) Finish(std::move(job), absl::UnavailableError("shut down"));
  }
  void Cancel(uint64_t id) override {
    std::unique_ptr<InferenceJob> cancelled;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
        if ((*it)->id == id) {
          cancelled = std::move(*it);
          jobs_.erase(it);
          break;
        }
      }
    }
    if (cancelled != nullptr) Finish(std::move(cancelled), absl::CancelledError("cancelled"));
  }
  int64_t queued() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(jobs_.size());
  }

  // The oldest queued job (null when none), taken out of the queue.
  std::unique_ptr<InferenceJob> Take() {
    absl::MutexLock lock(&mu_);
    if (jobs_.empty()) return nullptr;
    std::unique_ptr<InferenceJob> job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }
  // As a scheduler does: done, then the job is destroyed.
  static void Finish(std::unique_ptr<InferenceJob> job, absl::Status status) {
    job->done(std::move(status));
    job.reset();
  }

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<InferenceJob>> jobs_ ABSL_GUARDED_BY(mu_);
};

// One model version on a FakeScheduler, with its metrics.
struct FakeVersion {
  FakeScheduler* scheduler;
  std::shared_ptr<CountingMetrics> metrics;
  std::shared_ptr<ServedModel> model;
};

FakeVersion MakeVersion(const std::string& version) {
  auto scheduler = std::make_unique<FakeScheduler>();
  FakeScheduler* raw = scheduler.get();
  auto metrics = std::make_shared<CountingMetrics>();
  auto model = std::make_shared<ServedModel>("sepconv", version,
                                             std::make_shared<const ModelSpec>(DefaultModel()),
                                             std::move(scheduler), metrics);
  return FakeVersion{raw, metrics, model};
}

// What `done` received, and how often.
struct Outcome {
  absl::Mutex mu;
  int calls ABSL_GUARDED_BY(mu) = 0;
  absl::Status status ABSL_GUARDED_BY(mu);

  absl::AnyInvocable<void(absl::Status)> Done() {
    return [this](absl::Status s) {
      absl::MutexLock lock(&mu);
      ++calls;
      status = std::move(s);
    };
  }
  int Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }
  absl::StatusCode code() {
    absl::MutexLock lock(&mu);
    return status.code();
  }
};

class InferenceCoreTest : public ::testing::Test {
 protected:
  InferenceCoreTest() {
    registry_->AddOrReplace(v1_.model);
    CoreOptions options;
    options.request_log = std::make_shared<RequestLog>(
        RequestLogOptions{1000, 1000, 256},
        [this](absl::string_view line) {
          absl::MutexLock lock(&log_mu_);
          log_.emplace_back(line);
        },
        [] { return absl::Now(); });
    options.limits.max_batch = 4;
    core_ = std::make_unique<InferenceCore>(registry_, options);
    input_ = std::vector<float>(32 * 6 * 6, 0.5f);
    output_.resize(64 * 6 * 6);
  }

  ~InferenceCoreTest() override {
    for (const auto& model : registry_->LoadedModels()) model->Shutdown(absl::Now());
  }

  InferRequest Request() const {
    InferRequest request;
    request.model_name = "sepconv";
    InferInput& input = request.inputs.emplace_back();
    input.name = "input";
    input.datatype = "FP32";
    input.shape = {1, 32, 6, 6};
    input.raw = absl::string_view(reinterpret_cast<const char*>(input_.data()),
                                  input_.size() * sizeof(float));
    return request;
  }
  InferCall Call() const {
    InferCall call;
    call.start = absl::Now();
    call.peer = "test";
    return call;
  }
  // Hands out output_, counting calls.
  OutputAllocator Allocate() {
    return [this](const InferResult& result) -> absl::StatusOr<float*> {
      ++allocations_;
      last_result_ = result;
      return output_.data();
    };
  }
  int LogLines() {
    absl::MutexLock lock(&log_mu_);
    return static_cast<int>(log_.size());
  }

  std::shared_ptr<ModelRegistry> registry_ = std::make_shared<ModelRegistry>();
  FakeVersion v1_ = MakeVersion("1");
  std::unique_ptr<InferenceCore> core_;
  std::vector<float> input_;
  std::vector<float> output_;
  int allocations_ = 0;
  InferResult last_result_;
  absl::Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(InferenceCoreTest, SuccessIsRecordedOnceAndTheJobUsesTheFrontendsBuffers) {
  const InferRequest request = Request();
  Outcome outcome;
  core_->Infer(request, Call(), Allocate(), outcome.Done());
  EXPECT_EQ(outcome.Calls(), 0);  // queued, not answered
  std::unique_ptr<InferenceJob> job = v1_.scheduler->Take();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(static_cast<const void*>(job->input), static_cast<const void*>(input_.data()));
  EXPECT_EQ(job->output, output_.data());
  EXPECT_EQ(job->dims, (Dims4{1, 32, 6, 6}));
  EXPECT_EQ(job->deadline, absl::InfiniteFuture());
  EXPECT_EQ(allocations_, 1);
  EXPECT_EQ(last_result_.model_version, "1");
  EXPECT_EQ(last_result_.output_dims, (Dims4{1, 64, 6, 6}));
  EXPECT_TRUE(last_result_.raw);
  FakeScheduler::Finish(std::move(job), absl::OkStatus());
  EXPECT_EQ(outcome.Calls(), 1);
  EXPECT_EQ(outcome.code(), Code::kOk);
  EXPECT_EQ(v1_.metrics->Count(Code::kOk), 1);
  EXPECT_EQ(v1_.metrics->Total(), 1);
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(InferenceCoreTest, ValidationLimitAndAuthFailuresAreRecordedAndLoggedOnce) {
  InferRequest bad_type = Request();
  bad_type.inputs[0].datatype = "INT8";
  InferRequest too_big = Request();
  too_big.inputs[0].shape[0] = 5;  // above max_batch 4 (raw size now wrong: shape first)
  too_big.inputs[0].raw.reset();
  std::vector<float> five(5 * 32 * 6 * 6);
  too_big.inputs[0].fp32 = absl::MakeConstSpan(five);
  InferCall stranger = Call();
  stranger.auth = absl::UnauthenticatedError("no token");
  const InferRequest good = Request();

  struct Case {
    const InferRequest* request;
    InferCall call;
    Code code;
  };
  std::vector<Case> cases;
  cases.push_back({&bad_type, Call(), Code::kInvalidArgument});
  cases.push_back({&too_big, Call(), Code::kResourceExhausted});
  cases.push_back({&good, stranger, Code::kUnauthenticated});
  int n = 0;
  for (Case& c : cases) {
    Outcome outcome;
    core_->Infer(*c.request, std::move(c.call), Allocate(), outcome.Done());
    ++n;
    EXPECT_EQ(outcome.Calls(), 1) << n;  // inline
    EXPECT_EQ(outcome.code(), c.code) << n;
    EXPECT_EQ(v1_.metrics->Count(c.code), 1) << n;
    EXPECT_EQ(v1_.metrics->Total(), n);
    EXPECT_EQ(LogLines(), n);
  }
  EXPECT_EQ(allocations_, 0);
  EXPECT_EQ(v1_.scheduler->queued(), 0);
}

TEST_F(InferenceCoreTest, UnknownModelIsLoggedButMintsNoMetrics) {
  InferRequest request = Request();
  request.model_name = "nope";
  Outcome outcome;
  core_->Infer(request, Call(), Allocate(), outcome.Done());
  EXPECT_EQ(outcome.code(), Code::kNotFound);
  EXPECT_EQ(outcome.Calls(), 1);
  EXPECT_EQ(v1_.metrics->Total(), 0);
  EXPECT_EQ(LogLines(), 1);
}

TEST_F(InferenceCoreTest, AllocatorErrorEndsTheRequestOnceWithoutAJob) {
  const InferRequest request = Request();
  Outcome outcome;
  core_->Infer(
      request, Call(),
      [](const InferResult&) -> absl::StatusOr<float*> {
        return absl::ResourceExhaustedError("too large for this response");
      },
      outcome.Done());
  EXPECT_EQ(outcome.Calls(), 1);
  EXPECT_EQ(outcome.code(), Code::kResourceExhausted);
  EXPECT_EQ(v1_.metrics->Count(Code::kResourceExhausted), 1);
  EXPECT_EQ(v1_.metrics->Total(), 1);
  EXPECT_EQ(LogLines(), 1);
  EXPECT_EQ(v1_.scheduler->queued(), 0);
}

TEST_F(InferenceCoreTest, AVersionReplacedBetweenLookupAndSubmitIsRetriedOnItsSuccessor) {
  FakeVersion v1b = MakeVersion("1");
  // The first submit finds its version replaced (as a registry swap during
  // a reload does) and refuses like a stopped scheduler.
  v1_.scheduler->on_submit = [this, &v1b] {
    registry_->AddOrReplace(v1b.model);
    return absl::UnavailableError("replaced");
  };
  const InferRequest request = Request();
  Outcome outcome;
  core_->Infer(request, Call(), Allocate(), outcome.Done());
  EXPECT_EQ(allocations_, 2);  // once per attempt; the second answer replaces the first
  std::unique_ptr<InferenceJob> job = v1b.scheduler->Take();
  ASSERT_NE(job, nullptr);
  FakeScheduler::Finish(std::move(job), absl::OkStatus());
  EXPECT_EQ(outcome.Calls(), 1);
  EXPECT_EQ(outcome.code(), Code::kOk);
  EXPECT_EQ(v1b.metrics->Count(Code::kOk), 1);
  EXPECT_EQ(v1_.metrics->Total(), 0);
  EXPECT_EQ(LogLines(), 0);
  v1_.model->Shutdown(absl::Now());
}

TEST_F(InferenceCoreTest, RefusalsAtShutdownAreHeldUntilReleased) {
  EXPECT_TRUE(core_->Ready());
  core_->StartShutdown();
  EXPECT_FALSE(core_->Ready());
  EXPECT_FALSE(core_->ModelReady("sepconv", "1"));
  const InferRequest request = Request();
  Outcome held;
  core_->Infer(request, Call(), Allocate(), held.Done());
  EXPECT_EQ(held.Calls(), 0);
  core_->ReleaseRefusals();
  EXPECT_EQ(held.Calls(), 1);
  EXPECT_EQ(held.code(), Code::kUnavailable);
  Outcome later;
  core_->Infer(request, Call(), Allocate(), later.Done());
  EXPECT_EQ(later.Calls(), 1);
  EXPECT_EQ(later.code(), Code::kUnavailable);
  EXPECT_EQ(v1_.metrics->Count(Code::kUnavailable), 2);
  EXPECT_EQ(LogLines(), 2);
  EXPECT_EQ(allocations_, 0);
}

TEST_F(InferenceCoreTest, CancellationTakesAQueuedJobOutOnce) {
  const InferRequest request = Request();
  InferCall call = Call();
  auto cancellation = std::make_shared<Cancellation>();
  call.cancellation = cancellation;
  Outcome outcome;
  core_->Infer(request, std::move(call), Allocate(), outcome.Done());
  EXPECT_EQ(v1_.scheduler->queued(), 1);
  cancellation->Cancel();
  EXPECT_EQ(v1_.scheduler->queued(), 0);
  EXPECT_EQ(outcome.Calls(), 1);
  EXPECT_EQ(outcome.code(), Code::kCancelled);
  EXPECT_EQ(v1_.metrics->Count(Code::kCancelled), 1);
  EXPECT_EQ(v1_.metrics->Total(), 1);
}

TEST_F(InferenceCoreTest, DeadlineIsTheEarlierOfTransportAndTimeout) {
  InferRequest request = Request();
  request.timeout_us = 2500;
  InferCall call = Call();
  const absl::Time start = call.start;
  Outcome first;
  core_->Infer(request, call, Allocate(), first.Done());
  std::unique_ptr<InferenceJob> job = v1_.scheduler->Take();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->deadline, start + absl::Microseconds(2500));
  FakeScheduler::Finish(std::move(job), absl::DeadlineExceededError("expired"));
  EXPECT_EQ(first.code(), Code::kDeadlineExceeded);

  call.deadline = start + absl::Microseconds(1000);
  Outcome second;
  core_->Infer(request, call, Allocate(), second.Done());
  job = v1_.scheduler->Take();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->deadline, start + absl::Microseconds(1000));
  FakeScheduler::Finish(std::move(job), absl::OkStatus());

  request.timeout_us = 0;  // none
  Outcome third;
  core_->Infer(request, call, Allocate(), third.Done());
  job = v1_.scheduler->Take();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->deadline, start + absl::Microseconds(1000));
  FakeScheduler::Finish(std::move(job), absl::OkStatus());
  EXPECT_EQ(v1_.metrics->Total(), 3);
}

TEST_F(InferenceCoreTest, AQueuedJobHoldsItsVersionThroughAnUnload) {
  const InferRequest request = Request();
  Outcome outcome;
  core_->Infer(request, Call(), Allocate(), outcome.Done());
  std::weak_ptr<ServedModel> watch = v1_.model;
  // Unload: out of the registry, and every other reference dropped.
  EXPECT_NE(registry_->Remove("sepconv", "1"), nullptr);
  FakeScheduler* scheduler = v1_.scheduler;
  std::shared_ptr<CountingMetrics> metrics = v1_.metrics;
  v1_.model.reset();
  EXPECT_FALSE(watch.expired());  // the queued job's lease
  std::unique_ptr<InferenceJob> job = scheduler->Take();
  ASSERT_NE(job, nullptr);
  FakeScheduler::Finish(std::move(job), absl::OkStatus());
  EXPECT_EQ(outcome.code(), Code::kOk);
  EXPECT_EQ(metrics->Count(Code::kOk), 1);
  EXPECT_TRUE(watch.expired());  // the lease went with the job
}

TEST_F(InferenceCoreTest, MetadataIsProtocolFree) {
  ServerMetadataInfo server = core_->ServerMetadata();
  EXPECT_EQ(server.name, "sepconv-serve");
  EXPECT_FALSE(server.version.empty());
  absl::StatusOr<ModelMetadataInfo> model = core_->ModelMetadata("sepconv", "");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->versions, std::vector<std::string>{"1"});
  ASSERT_EQ(model->inputs.size(), 1u);
  EXPECT_EQ(model->inputs[0].shape, (std::vector<int64_t>{-1, 32, -1, -1}));
  EXPECT_EQ(model->outputs[0].shape, (std::vector<int64_t>{-1, 64, -1, -1}));
  EXPECT_EQ(core_->ModelMetadata("nope", "").status().code(), Code::kNotFound);
  EXPECT_FALSE(core_->ModelReady("nope", ""));
}

// Two model_warmup samples: the larger (3x32x5x5) is what frontends warm.
constexpr char kWarmConfig[] = R"(
  max_batch_size: 4
  model_warmup { name: "one" batch_size: 1
    inputs { key: "input" value { data_type: TYPE_FP32 dims: [ 32, 6, 6 ] zero_data: true } } }
  model_warmup { name: "three" batch_size: 3
    inputs { key: "input" value { data_type: TYPE_FP32 dims: [ 32, 5, 5 ] zero_data: true } } }
)";

TEST_F(InferenceCoreTest, LargestWarmupTensorsAreTheLargestModelWarmupSample) {
  EXPECT_EQ(core_->LargestWarmupTensors().input, 0u);  // v1 declares no warm-up
  ModelConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kWarmConfig, &config));
  registry_->AddOrReplace(std::make_shared<ServedModel>(
      "warm", "1", std::make_shared<const ModelSpec>(DefaultModel()),
      std::make_unique<FakeScheduler>(), std::make_shared<CountingMetrics>(), config));
  const TensorBytes largest = core_->LargestWarmupTensors();
  EXPECT_EQ(largest.input, 3u * 32 * 5 * 5 * sizeof(float));
  EXPECT_EQ(largest.output, 3u * 64 * 5 * 5 * sizeof(float));
}

// The last reference to a version dropped by a job's callback on the
// version's own worker: the destructor must not join the thread it runs on
// (that throws or deadlocks); a thread of its own stops the workers.
TEST(ServedModelLeaseTest, LastLeaseDroppedOnItsOwnWorkerThread) {
  auto spec = std::make_shared<const ModelSpec>(DefaultModel());
  auto metrics = std::make_shared<CountingMetrics>();
  SchedulerOptions options;
  options.instances = 1;
  ExecutorOptions executor_options;
  executor_options.threads = 1;
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(
      options, [spec, executor_options] { return Executor::Create(spec, executor_options); },
      metrics);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  auto model = std::make_shared<ServedModel>("sepconv", "1", spec, *std::move(scheduler), metrics);
  std::weak_ptr<ServedModel> watch_model = model;
  std::weak_ptr<ModelMetrics> watch_workers = metrics;  // the scheduler keeps it until joined
  metrics.reset();

  std::vector<float> input(32 * 4 * 4, 1.0f);
  std::vector<float> output(64 * 4 * 4);
  absl::Notification ran;
  auto job = std::make_unique<InferenceJob>();
  job->id = 1;
  job->dims = Dims4{1, 32, 4, 4};
  job->input = input.data();
  job->output = output.data();
  absl::Notification submitted;
  job->done = [lease = model, &ran, &submitted](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    submitted.WaitForNotification();  // the test's own reference is gone by now
    ran.Notify();
  };
  ASSERT_TRUE(model->Submit(std::move(job)).ok());
  model.reset();
  submitted.Notify();
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!watch_workers.expired() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(watch_model.expired());
  EXPECT_TRUE(watch_workers.expired()) << "the workers were never stopped";
}

}  // namespace
}  // namespace sepconv
