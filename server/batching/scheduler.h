#ifndef SEPCONV_SERVER_BATCHING_SCHEDULER_H_
#define SEPCONV_SERVER_BATCHING_SCHEDULER_H_

// The dynamic batcher of one served model version: a bounded queue of
// inference jobs and `instances` worker threads, each with its own Executor,
// that form batches of jobs with the same (C, H, W) and run them. The
// frontends (through the core) only Submit; all computation happens on the
// workers.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "engine/model_spec.h"
#include "server/metrics/metrics.h"

namespace sepconv {

class Clock;        // server/batching/internal/clock.h
class EngineLanes;  // server/batching/engine_lanes.h

struct SchedulerOptions {
  // Samples per engine execution; 0 disables batching (one job per run).
  int max_batch_size = 8;
  // How long the first job of a batch may wait for company, at most.
  absl::Duration max_queue_delay = absl::Microseconds(500);
  // Wait for company only when it is expected to fill the batch within
  // max_queue_delay while requests arrive faster than the engine completes
  // them; otherwise start at once (see server/batching/internal/batch_queue.h). False
  // always waits up to max_queue_delay, as Triton does.
  bool adaptive_queue_delay = true;
  // Batch sizes to prefer: a batch is run as soon as it reaches one of these.
  std::vector<int> preferred_batch_sizes;
  // Jobs queued at most; a Submit beyond that is RESOURCE_EXHAUSTED.
  int max_queue_size = 1024;
  // Worker threads, each with its own Executor.
  int instances = 1;
  // Where the engine runs: worker i creates, warms and runs its Executor on
  // lane i of `lanes` (server/batching/engine_lanes.h; the server passes the
  // process's, shared by every model, so OpenMP keeps one thread pool per
  // lane). Null: on the worker's own thread. Not owned; must outlive the
  // Scheduler.
  EngineLanes* lanes = nullptr;
  // Threads that run done callbacks (write the answers) for workers that
  // have more work queued; a worker with nothing queued runs its last job's
  // done itself. At least 1.
  int completion_threads = 2;
  // Time source for delays and deadlines; null means real time. Tests inject
  // a fake one. Not owned; must outlive the Scheduler.
  Clock* clock = nullptr;
  // Called on a worker with each batch it has taken from the queue, before
  // the batch runs (the jobs no longer count as queued); null: nothing. The
  // server binary never sets it: test builds park the worker here until the
  // test releases it (tests/testing/engine_gate.h), so that what a test
  // sends next is provably queued, however fast the CPU.
  std::function<void()> before_batch;
};

// How long a job waited in the queue (and then for its engine lane, see
// SchedulerOptions::lanes) and how long its batch took in the engine.
struct JobTimes {
  absl::Duration queue_time;
  absl::Duration compute_time;
};

// One request's work. The pointers stay valid until `done` has been called.
struct InferenceJob {
  // Names the job for Scheduler::Cancel; chosen by the caller, unique among
  // the jobs of one Scheduler (e.g. from a process-wide counter).
  uint64_t id = 0;
  Dims4 dims;                    // this job's NCHW input shape
  const float* input = nullptr;  // dims.n * C * H * W floats
  float* output = nullptr;       // room for the model's output for `dims`
  absl::Time deadline = absl::InfiniteFuture();
  // Called exactly once, on a scheduler thread (a worker or a completion
  // thread; or on the thread calling Shutdown or Cancel), never under a scheduler lock, with OK or
  // the reason the job was not computed: DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE or the engine's
  // error. The job itself stays alive until done returns.
  absl::AnyInvocable<void(absl::Status)> done;
  // Where the scheduler records the job's times before it calls done with
  // OK; null: not recorded. Shared, so that `done` can hold it too and read
  // the times without pointing back into the job that owns it.
  std::shared_ptr<JobTimes> times;
};

class Scheduler {
 public:
  using ExecutorFactory = std::function<absl::StatusOr<std::unique_ptr<Executor>>()>;

  // Creates the workers, one Executor each from `make_executor`. `metrics`
  // may be null; the scheduler shares it, so the metrics live as long as the
  // workers that record into them, whoever else lets go first.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(SchedulerOptions options,
                                                           ExecutorFactory make_executor,
                                                           std::shared_ptr<ModelMetrics> metrics);
  virtual ~Scheduler() = default;

  // Queues `job`. On OK, job->done will be called exactly once. Otherwise
  // done is never called and the status says why: RESOURCE_EXHAUSTED (queue
  // full), UNAVAILABLE (shutting down), INVALID_ARGUMENT (no job, no `done`
  // or dims.n < 1). Never blocks on computation.
  virtual absl::Status Submit(std::unique_ptr<InferenceJob> job) = 0;

  // Stops accepting jobs and lets queued and running ones finish; jobs still
  // queued at `deadline` end UNAVAILABLE. Returns when the workers have
  // stopped. Idempotent; a concurrent second call waits for the first.
  // Must not be called from a `done` callback. The destructor calls
  // Shutdown(now) unless it already ran.
  virtual void Shutdown(absl::Time deadline) = 0;

  // Cancellation as an event: if the job `id` is still queued, takes it out
  // and finishes it CANCELLED (not computed) before returning, on this
  // thread; if it was already taken for a batch, already finished, or is
  // unknown, does nothing (a running job completes normally). Never blocks
  // on computation. Must not be called under a lock that a `done` callback
  // takes.
  virtual void Cancel(uint64_t id) = 0;

  // Jobs currently queued (not yet picked for a batch).
  virtual int64_t queued() const = 0;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_SCHEDULER_H_
