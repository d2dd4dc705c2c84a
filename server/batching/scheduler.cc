#include "server/batching/scheduler.h"

#include <pthread.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/engine_lanes.h"
#include "server/batching/internal/batch_queue.h"
#include "server/batching/internal/clock.h"

namespace sepconv {
namespace {

using internal::BatchQueue;
using internal::DroppedJob;
using internal::QueuedJob;

void NameThread(std::thread& thread, const std::string& name) {
  // Linux limits names to 15 characters; a failure only loses the name.
  pthread_setname_np(thread.native_handle(), name.substr(0, 15).c_str());
}

// Runs `fn` on lane `lane` of `lanes`, or here when there are none
// (SchedulerOptions::lanes).
void OnLane(EngineLanes* lanes, int lane, absl::FunctionRef<void()> fn) {
  if (lanes != nullptr) {
    lanes->Run(lane, fn);
  } else {
    fn();
  }
}

// Calls the job's done and frees the job (its buffers belong to the caller).
void Finish(QueuedJob& queued, absl::Status status) {
  queued.job->done(std::move(status));
  queued.job.reset();
}

// Finishes jobs off the workers. A job's done writes its answer (at the
// default model's shape, serializing and sending the response costs about as
// much as computing it); a worker that finished its batch's jobs itself would
// leave the engine idle meanwhile and make every answer of a batch wait for
// the ones before it. So a worker hands them here and starts on the queue.
class Completions {
 public:
  void Start(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Loop(); });
      NameThread(threads_.back(), absl::StrCat("sepconv-done", i));
    }
  }

  void Post(QueuedJob queued, absl::Status status) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(Pending{std::move(queued), std::move(status)});
    cv_.Signal();
  }

  // Finishes everything posted, then joins the threads.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      cv_.SignalAll();
    }
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }

 private:
  struct Pending {
    QueuedJob queued;
    absl::Status status;
  };

  void Loop() {
    for (;;) {
      Pending next;
      {
        absl::MutexLock lock(&mu_);
        while (pending_.empty() && !stopping_) cv_.Wait(&mu_);
        if (pending_.empty()) return;
        next = std::move(pending_.front());
        pending_.pop_front();
      }
      Finish(next.queued, std::move(next.status));
    }
  }

  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// Workers and a reaper share one mutex-protected BatchQueue. Workers wait on
// work_cv_ for a batch to become ready; the reaper drops expired jobs at
// their deadline while every worker is busy computing; Cancel takes a queued
// job out as the cancel arrives; Shutdown waits on drained_cv_ for the queue
// to empty. Completions run the done callbacks a busy worker hands off.
class BatchingScheduler final : public Scheduler {
 public:
  BatchingScheduler(const SchedulerOptions& options, std::shared_ptr<ModelMetrics> metrics)
      : clock_(options.clock != nullptr ? options.clock : Clock::Real()),
        metrics_(std::move(metrics)),
        max_queue_size_(static_cast<size_t>(options.max_queue_size)),
        completion_threads_(options.completion_threads),
        before_batch_(options.before_batch),
        lanes_(options.lanes),
        queue_(options) {}

  ~BatchingScheduler() override { Shutdown(clock_->Now()); }

  // Takes ownership of `executors` and starts one worker per executor and
  // the reaper. Called once, before the scheduler is shared.
  void Start(std::vector<std::unique_ptr<Executor>> executors) {
    executors_ = std::move(executors);
    completions_.Start(completion_threads_);
    for (size_t i = 0; i < executors_.size(); ++i) {
      const int lane = static_cast<int>(i);
      threads_.emplace_back([this, lane] {
        WarmThisWorker(*executors_[lane]);
        WorkerLoop(executors_[lane].get(), lane);
      });
      NameThread(threads_.back(), absl::StrCat("sepconv-work", i));
    }
    threads_.emplace_back([this] { ReaperLoop(); });
    NameThread(threads_.back(), "sepconv-reaper");
    absl::MutexLock lock(&mu_);
    auto all_warm = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return workers_warm_ == executors_.size();
    };
    mu_.Await(absl::Condition(&all_warm));
  }

  absl::Status Submit(std::unique_ptr<InferenceJob> job) override {
    if (job == nullptr || !job->done) {
      return absl::InvalidArgumentError("Submit needs a job with a done callback");
    }
    if (job->dims.n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("a job needs at least one sample, got n=", job->dims.n));
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("the model is shutting down and accepts no new requests");
    }
    if (queue_.size() >= max_queue_size_) {
      return absl::ResourceExhaustedError(absl::StrCat("queue full: ", queue_.size(),
                                                       " requests waiting (max_queue_size ",
                                                       max_queue_size_, "); retry later"));
    }
    const bool was_empty = queue_.empty();
    const absl::Time deadline = job->deadline;
    queue_.Push(std::move(job), clock_->Now());
    // Under the lock, so that the -1 of the job leaving the queue comes later.
    if (metrics_ != nullptr) metrics_->PendingAdd(1);
    // Waiting workers re-check only when a batch may have become ready;
    // otherwise their max_queue_delay timer wakes them.
    if (queue_.MayBeReady()) work_cv_.Signal();
    if (was_empty || deadline < reaper_wake_at_) reaper_cv_.Signal();
    return absl::OkStatus();
  }

  void Shutdown(absl::Time deadline) override {
    std::vector<QueuedJob> leftovers;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        while (!stopped_) drained_cv_.Wait(&mu_);
        return;
      }
      stopping_ = true;
      work_cv_.SignalAll();
      reaper_cv_.SignalAll();
      while (!queue_.empty() && clock_->Now() < deadline) {
        clock_->WaitUntil(&drained_cv_, &mu_, deadline);
      }
      leftovers = queue_.TakeAll();
      work_cv_.SignalAll();
      reaper_cv_.SignalAll();
    }
    const absl::Status unavailable =
        absl::UnavailableError("the server shut down before this queued request could be computed");
    for (QueuedJob& queued : leftovers) Finish(queued, unavailable);
    if (metrics_ != nullptr && !leftovers.empty()) {
      metrics_->PendingAdd(-static_cast<int64_t>(leftovers.size()));
    }
    for (std::thread& thread : threads_) thread.join();
    completions_.Stop();  // after the workers, the last to post
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    drained_cv_.SignalAll();
  }

  void Cancel(uint64_t id) override {
    QueuedJob cancelled;
    {
      absl::MutexLock lock(&mu_);
      cancelled = queue_.Remove(id);
      if (cancelled.job == nullptr) return;  // taken for a batch, finished or unknown
      // Workers waiting for this job's batch-mates, and the reaper waiting
      // for its deadline, re-decide without it.
      work_cv_.Signal();
      if (stopping_ && queue_.empty()) drained_cv_.SignalAll();
    }
    Finish(cancelled, absl::CancelledError("request cancelled while queued; it was not computed"));
    // After the +1 of its Submit, which happened under the lock it was
    // removed under.
    if (metrics_ != nullptr) metrics_->PendingAdd(-1);
  }

  int64_t queued() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(queue_.size());
  }

 private:
  // Without lanes, runs the executor's warm-up shapes once more on this
  // worker's thread, so that the first request does not pay for the thread's
  // own engine state (Executor::warm_shapes); an error here is the first
  // request's to report. On a lane there is nothing left to do: the
  // executor was made, and warmed, on the thread that will run it.
  void WarmThisWorker(Executor& executor) {
    if (lanes_ == nullptr && !executor.warm_shapes().empty()) {
      executor.Warm(executor.warm_shapes()).IgnoreError();
    }
    absl::MutexLock lock(&mu_);
    ++workers_warm_;
  }

  void WorkerLoop(Executor* executor, int lane) {
    std::vector<QueuedJob> batch;
    std::vector<BatchItem> items;
    std::vector<DroppedJob> dropped;
    std::optional<Executed> executed;  // the last batch, not yet recorded
    absl::Duration held;
    for (;;) {
      bool exit = false;
      {
        absl::MutexLock lock(&mu_);
        if (executed.has_value()) queue_.RecordCompute(executed->compute, executed->samples);
        executed.reset();
        for (;;) {
          const absl::Time now = clock_->Now();
          queue_.Sweep(now, &dropped);
          absl::Time retry_at;
          if (queue_.TakeBatch(now, stopping_, &batch, &retry_at)) break;
          if (!dropped.empty()) break;
          if (stopping_ && queue_.empty()) {
            exit = true;
            break;
          }
          clock_->WaitUntil(&work_cv_, &mu_, retry_at);
        }
        held = queue_.last_hold();
        // Another idle worker may be able to start the next batch.
        if (!batch.empty() && !queue_.empty()) work_cv_.Signal();
        if (stopping_ && queue_.empty()) drained_cv_.SignalAll();
      }
      FinishDropped(&dropped);
      if (!batch.empty()) executed = RunBatch(executor, lane, held, &batch, &items);
      if (exit) return;
    }
  }

  // Drops expired jobs while the workers are busy, waking only at the
  // earliest deadline (Submit wakes it when a job brings an earlier one).
  void ReaperLoop() {
    std::vector<DroppedJob> dropped;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        reaper_wake_at_ = absl::InfiniteFuture();
        while (!stopping_ && queue_.empty()) reaper_cv_.Wait(&mu_);
        if (stopping_ && queue_.empty()) return;
        const absl::Time now = clock_->Now();
        const absl::Time earliest_deadline = queue_.Sweep(now, &dropped);
        if (dropped.empty()) {
          reaper_wake_at_ = earliest_deadline;
          clock_->WaitUntil(&reaper_cv_, &mu_, reaper_wake_at_);
        } else if (stopping_ && queue_.empty()) {
          drained_cv_.SignalAll();
        }
      }
      FinishDropped(&dropped);
    }
  }

  // One engine execution: how long it took and how many samples it ran.
  struct Executed {
    absl::Duration compute;
    int64_t samples = 0;
  };

  // Runs and finishes `batch`, held back `held` for company.
  Executed RunBatch(Executor* executor, int lane, absl::Duration held,
                    std::vector<QueuedJob>* batch, std::vector<BatchItem>* items) {
    const absl::Time start = clock_->Now();
    if (metrics_ != nullptr) metrics_->BatchHeld(held);
    int64_t samples = 0;
    items->clear();
    for (const QueuedJob& queued : *batch) {
      InferenceJob& job = *queued.job;
      items->push_back(BatchItem{job.input, job.output, job.dims.n});
      samples += job.dims.n;
    }
    if (metrics_ != nullptr) metrics_->PendingAdd(-static_cast<int64_t>(batch->size()));
    if (before_batch_) before_batch_();
    Dims4 chw = batch->front().job->dims;
    chw.n = samples;
    // Timed on the lane: a wait for another model's turn there is queueing,
    // not compute.
    absl::StatusOr<FlopCount> flops = absl::InternalError("the engine did not run");
    absl::Duration compute, lane_wait;
    const absl::Time handed = clock_->Now();
    OnLane(lanes_, lane, [&] {
      const absl::Time compute_start = clock_->Now();
      lane_wait = compute_start - handed;
      flops = executor->Run(chw, *items);
      compute = clock_->Now() - compute_start;
    });
    for (const QueuedJob& queued : *batch) {
      const absl::Duration queue_time = start - queued.enqueued + lane_wait;
      if (queued.job->times != nullptr) queued.job->times->queue_time = queue_time;
      if (metrics_ != nullptr) metrics_->QueueTime(queue_time);
    }
    if (flops.ok() && metrics_ != nullptr) metrics_->BatchExecuted(samples, compute, *flops);
    // Jobs are waiting: the answers are written by the completion threads
    // while this worker computes. Otherwise the worker would idle, so it
    // writes the last answer itself (a lone request pays no handoff).
    bool more_queued;
    {
      absl::MutexLock lock(&mu_);
      more_queued = !queue_.empty();
    }
    for (size_t i = 0; i < batch->size(); ++i) {
      QueuedJob& queued = (*batch)[i];
      if (queued.job->times != nullptr) queued.job->times->compute_time = compute;
      if (i + 1 == batch->size() && !more_queued) {
        Finish(queued, flops.status());
      } else {
        completions_.Post(std::move(queued), flops.status());
      }
    }
    batch->clear();
    return Executed{compute, samples};
  }

  void FinishDropped(std::vector<DroppedJob>* dropped) {
    if (dropped->empty()) return;
    for (DroppedJob& job : *dropped) Finish(job.queued, std::move(job.status));
    if (metrics_ != nullptr) metrics_->PendingAdd(-static_cast<int64_t>(dropped->size()));
    dropped->clear();
  }

  Clock* const clock_;
  // May be null. Shared: the workers, which record into it until they are
  // joined, keep it alive.
  const std::shared_ptr<ModelMetrics> metrics_;
  const size_t max_queue_size_;
  const int completion_threads_;
  const std::function<void()> before_batch_;
  EngineLanes* const lanes_;  // null: the engine runs on the workers
  std::vector<std::unique_ptr<Executor>> executors_;
  size_t workers_warm_ ABSL_GUARDED_BY(mu_) = 0;  // have run WarmThisWorker
  Completions completions_;
  std::vector<std::thread> threads_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;     // a batch may be ready, or stopping
  absl::CondVar reaper_cv_;   // the queue became non-empty, or stopping
  absl::CondVar drained_cv_;  // the queue emptied while stopping, or stopped
  BatchQueue queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // When the reaper next sweeps on its own (InfiniteFuture while idle).
  absl::Time reaper_wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    SchedulerOptions options, ExecutorFactory make_executor,
    std::shared_ptr<ModelMetrics> metrics) {
  if (absl::Status valid = internal::ValidateSchedulerOptions(options); !valid.ok()) return valid;
  if (!make_executor) return absl::InvalidArgumentError("Scheduler needs an executor factory");
  std::vector<std::unique_ptr<Executor>> executors;
  for (int i = 0; i < options.instances; ++i) {
    // Made on its lane: a warm-up or weight reorder started elsewhere would
    // leave OpenMP a thread pool on the loading thread too.
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        absl::InternalError("the executor factory did not run");
    OnLane(options.lanes, i, [&] { executor = make_executor(); });
    if (!executor.ok()) return executor.status();
    if (*executor == nullptr) {
      return absl::InternalError("the executor factory returned null");
    }
    executors.push_back(*std::move(executor));
  }
  auto scheduler = std::make_unique<BatchingScheduler>(options, std::move(metrics));
  scheduler->Start(std::move(executors));
  return scheduler;
}

}  // namespace sepconv
