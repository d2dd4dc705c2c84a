#ifndef SEPCONV_TESTS_SERVER_SCHEDULER_TESTING_H_
#define SEPCONV_TESTS_SERVER_SCHEDULER_TESTING_H_

// Test doubles for the scheduler: a fake clock, a controllable fake engine
// (records every batch, can be held inside Run, can fail), recording metrics
// and a job helper that owns its buffers and collects its status.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "server/batching/internal/clock.h"
#include "server/batching/scheduler.h"
#include "server/metrics/metrics.h"

namespace sepconv {
namespace testing {

// Real waits in tests are bounded by this; a correct scheduler needs far less.
inline constexpr absl::Duration kTestTimeout = absl::Seconds(10);

// Time moves only when Advance is called. A waiter returns when signalled or
// when Advance moves fake time to or past its deadline, never because real
// time passed: a scheduler that forgets to signal stays stuck and the test
// notices. Advance wakes waiters under their own mutex, so no wake-up is lost.
// Advance must not race with the destruction of a Scheduler using this clock.
class FakeClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) const override {
    {
      absl::MutexLock lock(&mu_);
      if (now_ >= deadline) return;
      waiters_.push_back({cv, mu, deadline});
    }
    cv->Wait(mu);  // `mu` is held from the check above until here
    absl::MutexLock lock(&mu_);
    waiters_.erase(
        std::find_if(waiters_.begin(), waiters_.end(), [cv, mu, deadline](const Waiter& w) {
          return w.cv == cv && w.mu == mu && w.deadline == deadline;
        }));
  }
  void Advance(absl::Duration d) {
    std::vector<Waiter> waiters;
    {
      absl::MutexLock lock(&mu_);
      now_ += d;
      waiters = waiters_;
    }
    for (const Waiter& w : waiters) {
      absl::MutexLock lock(w.mu);
      w.cv->SignalAll();
    }
  }
  // Blocks until a thread waits for `deadline` (e.g. a worker that decided
  // to hold a batch until then): a test moves time only once the code under
  // test has acted, however fast or slow the machine. False after the hang
  // guard `timeout`.
  bool AwaitWaiterFor(absl::Time deadline, absl::Duration timeout = absl::Seconds(60)) const {
    absl::MutexLock lock(&mu_);
    auto waiting = [this, deadline]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::any_of(waiters_.begin(), waiters_.end(),
                         [deadline](const Waiter& w) { return w.deadline == deadline; });
    };
    return mu_.AwaitWithTimeout(absl::Condition(&waiting), timeout);
  }

 private:
  struct Waiter {
    absl::CondVar* cv;
    absl::Mutex* mu;
    absl::Time deadline;
  };
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1000000);
  mutable std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

// What one Executor::Run saw.
struct RunRecord {
  Dims4 chw;                     // n = total samples
  std::vector<int64_t> samples;  // per item
  std::vector<const float*> inputs;
  std::thread::id thread;  // that ran it
};

// The model of the fake: output = 2 * input + 1, element-wise (C_out = C).
inline float FakeModel(float x) { return 2.0f * x + 1.0f; }

// State shared by every FakeExecutor of one test.
class FakeEngine {
 public:
  // While closed, Run blocks (after recording that it entered).
  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  // Waits until `n` Run calls have started; false on timeout.
  bool WaitForEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kTestTimeout);
  }
  int entered() const {
    absl::MutexLock lock(&mu_);
    return entered_;
  }
  int max_concurrent() const {
    absl::MutexLock lock(&mu_);
    return max_concurrent_;
  }
  std::vector<RunRecord> runs() const {
    absl::MutexLock lock(&mu_);
    return runs_;
  }

  absl::StatusOr<FlopCount> Run(const Dims4& chw, absl::Span<const BatchItem> items) {
    RunRecord record;
    record.chw = chw;
    record.thread = std::this_thread::get_id();
    for (const BatchItem& item : items) {
      record.samples.push_back(item.samples);
      record.inputs.push_back(item.input);
    }
    absl::Status failure;
    {
      absl::MutexLock lock(&mu_);
      runs_.push_back(record);
      ++entered_;
      ++running_;
      max_concurrent_ = std::max(max_concurrent_, running_);
      mu_.Await(absl::Condition(&gate_open_));
      --running_;
      failure = failure_;
    }
    if (!failure.ok()) return failure;
    // Like a real engine: one pass over the concatenation, then the slices.
    const int64_t per_sample = chw.c * chw.h * chw.w;
    std::vector<float> batch;
    for (const BatchItem& item : items) {
      batch.insert(batch.end(), item.input, item.input + item.samples * per_sample);
    }
    if (static_cast<int64_t>(batch.size()) != chw.n * per_sample) {
      return absl::InternalError("chw.n does not match the items");
    }
    for (float& x : batch) x = FakeModel(x);
    const float* next = batch.data();
    for (const BatchItem& item : items) {
      std::copy(next, next + item.samples * per_sample, item.output);
      next += item.samples * per_sample;
    }
    FlopCount flops;
    flops.pointwise = 2 * static_cast<int64_t>(batch.size());
    return flops;
  }

 private:
  mutable absl::Mutex mu_;
  bool gate_open_ = true;
  absl::Status failure_;
  int entered_ = 0;
  int running_ = 0;
  int max_concurrent_ = 0;
  std::vector<RunRecord> runs_;
};

class FakeExecutor final : public Executor {
 public:
  explicit FakeExecutor(FakeEngine* engine) : engine_(engine) {}
  using Executor::Run;
  absl::StatusOr<FlopCount> Run(const Dims4& chw, absl::Span<const BatchItem> items) override {
    return engine_->Run(chw, items);
  }
  const ModelSpec& model() const override { return model_; }

 private:
  FakeEngine* engine_;
  ModelSpec model_;
};

inline Scheduler::ExecutorFactory FakeFactory(FakeEngine* engine) {
  return [engine]() -> absl::StatusOr<std::unique_ptr<Executor>> {
    return std::make_unique<FakeExecutor>(engine);
  };
}

// One caller: distinct random input, its own output buffer, its final status.
class TestRequest {
 public:
  TestRequest(Dims4 dims, uint32_t seed) : dims_(dims) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    input_.resize(dims.n * dims.c * dims.h * dims.w);
    for (float& x : input_) x = dist(rng);
    output_.assign(input_.size(), 0.0f);
  }

  // A job writing into this request, with this request's id().
  std::unique_ptr<InferenceJob> Job(absl::Time deadline = absl::InfiniteFuture()) {
    auto job = std::make_unique<InferenceJob>();
    job->id = id_;
    job->dims = dims_;
    job->input = input_.data();
    job->output = output_.data();
    job->deadline = deadline;
    job->done = [this](absl::Status status) {
      absl::MutexLock lock(&mu_);
      ++done_calls_;
      status_ = std::move(status);
    };
    return job;
  }

  // Unique among TestRequests of the process (for Scheduler::Cancel).
  uint64_t id() const { return id_; }

  // Waits for done; nullopt on timeout.
  std::optional<absl::Status> Wait() {
    absl::MutexLock lock(&mu_);
    auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_calls_ > 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&finished), kTestTimeout)) return std::nullopt;
    return status_;
  }
  bool finished() const {
    absl::MutexLock lock(&mu_);
    return done_calls_ > 0;
  }
  int done_calls() const {
    absl::MutexLock lock(&mu_);
    return done_calls_;
  }
  // True when every output element is FakeModel(its own input).
  bool OutputIsOwn() const {
    for (size_t i = 0; i < input_.size(); ++i) {
      if (output_[i] != FakeModel(input_[i])) return false;
    }
    return true;
  }
  const float* input() const { return input_.data(); }
  const Dims4& dims() const { return dims_; }

 private:
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
  }

  const Dims4 dims_;
  const uint64_t id_ = NextId();
  std::vector<float> input_;
  std::vector<float> output_;
  mutable absl::Mutex mu_;
  int done_calls_ = 0;
  absl::Status status_;
};

// Sums what the scheduler recorded.
class RecordingMetrics final : public ModelMetrics {
 public:
  void RequestDone(absl::StatusCode, absl::Duration) override {}
  void PendingAdd(int64_t delta) override {
    absl::MutexLock lock(&mu_);
    pending_ += delta;
    min_pending_ = std::min(min_pending_, pending_);
  }
  void QueueTime(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++queue_times_;
  }
  void BatchExecuted(int64_t samples, absl::Duration, const FlopCount& flops) override {
    absl::MutexLock lock(&mu_);
    ++executions_;
    samples_ += samples;
    flops_ += flops.pointwise;
  }
  void BatchHeld(absl::Duration held) override {
    absl::MutexLock lock(&mu_);
    holds_.push_back(held);
  }
  // Every BatchHeld, in order.
  std::vector<absl::Duration> holds() const {
    absl::MutexLock lock(&mu_);
    return holds_;
  }
  int64_t pending() const {
    absl::MutexLock lock(&mu_);
    return pending_;
  }
  int64_t min_pending() const {
    absl::MutexLock lock(&mu_);
    return min_pending_;
  }
  int64_t queue_times() const {
    absl::MutexLock lock(&mu_);
    return queue_times_;
  }
  int64_t executions() const {
    absl::MutexLock lock(&mu_);
    return executions_;
  }
  int64_t samples() const {
    absl::MutexLock lock(&mu_);
    return samples_;
  }
  int64_t flops() const {
    absl::MutexLock lock(&mu_);
    return flops_;
  }

 private:
  mutable absl::Mutex mu_;
  int64_t pending_ = 0;
  int64_t min_pending_ = 0;
  int64_t queue_times_ = 0;
  int64_t executions_ = 0;
  int64_t samples_ = 0;
  int64_t flops_ = 0;
  std::vector<absl::Duration> holds_;
};

}  // namespace testing
}  // namespace sepconv

#endif  // SEPCONV_TESTS_SERVER_SCHEDULER_TESTING_H_
