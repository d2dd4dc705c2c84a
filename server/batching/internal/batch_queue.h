#ifndef SEPCONV_SERVER_BATCHING_INTERNAL_BATCH_QUEUE_H_
#define SEPCONV_SERVER_BATCHING_INTERNAL_BATCH_QUEUE_H_

// The batching policy of the Scheduler, without threads: a FIFO of queued
// jobs that decides which jobs form the next batch and when, and which jobs
// expired or were cancelled while waiting.
//
// Policy. The next batch has the shape (C, H, W) of the oldest job (so a
// different shape at the head never starves). Jobs of that shape are taken
// in arrival order while their samples fit in max_batch_size; those that do
// not fit stay queued. The batch starts when it is full, when a queued job of
// its shape did not fit (more waiting cannot help), when its oldest job has
// waited max_queue_delay, or when draining. Before that, if it reached a
// preferred batch size, the prefix ending at the largest preferred size
// reached starts at once. A job with at least max_batch_size samples, or any
// job when max_batch_size is 0, runs alone at once.
//
// Adaptive delay (options.adaptive_queue_delay, the default). A batch that is
// not ready by the rules above waits for company only when that is expected
// to pay: it starts at once unless requests arrive faster than the engine
// completes them (the mean gap between arrivals, per sample, is shorter than
// the recent engine time per execution) and the missing samples are expected
// to arrive before its oldest job has waited max_queue_delay. It then waits
// until they are expected, or until the silence since the last arrival is
// as long as one engine execution, and re-decides. The estimates are running
// averages of the gaps between Push calls (capped at max_queue_delay; the
// time since the last arrival counts as a gap) and of the RecordCompute
// times; without both, a batch starts at once, so a lone request never waits
// for batch-mates. max_queue_delay stays the upper bound.
//
// Batching only while it pays (adaptive policy too). Batching saves engine
// time only where a sample costs less in a batch than alone; where it does
// not (one engine thread on a small CPU, say), taking several jobs at once
// only makes their answers leave together. From the RecordCompute times,
// running means of the time per sample of 1-sample and of multi-sample
// executions are kept; once both are known and a batched sample is not at
// least kMinBatchSaving cheaper, the head job runs alone at once, except one
// dispatch in kBatchProbeEvery, which forms a batch as above so that the
// batched estimate stays current.
//
// Thread-compatible: the caller serialises access.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/batching/scheduler.h"

namespace sepconv {
namespace internal {

struct QueuedJob {
  std::unique_ptr<InferenceJob> job;
  absl::Time enqueued;
};

// A job taken out of the queue without being computed, and why.
struct DroppedJob {
  QueuedJob queued;
  absl::Status status;
};

// A batched sample must cost this much less than a lone one for batching to
// go on (below it, measurement noise).
inline constexpr double kMinBatchSaving = 0.05;
// While batching does not pay, one dispatch in this many still batches.
inline constexpr int kBatchProbeEvery = 32;

class BatchQueue {
 public:
  // `options` must be valid (see ValidateSchedulerOptions).
  explicit BatchQueue(const SchedulerOptions& options);

  size_t size() const { return jobs_.size(); }
  // Samples of every queued job.
  int64_t samples() const { return samples_; }
  bool empty() const { return jobs_.empty(); }

  void Push(std::unique_ptr<InferenceJob> job, absl::Time now);

  // Moves every job whose deadline is at or before `now` to `dropped`
  // (DEADLINE_EXCEEDED). Returns the earliest deadline among the jobs left
  // (InfiniteFuture if none). Scans the queue only when some deadline may
  // have passed, so a pass with nothing to drop costs O(1).
  absl::Time Sweep(absl::Time now, std::vector<DroppedJob>* dropped);

  // Takes the queued job with this id out of the queue and returns it; an
  // empty QueuedJob (null job) if no queued job has it.
  QueuedJob Remove(uint64_t id);

  // If a batch may start at `now` (see the policy above; `draining` means
  // start without waiting), appends its jobs, in arrival order, to `batch`
  // and returns true. Otherwise returns false and sets `*retry_at` to when
  // waiting alone would make a batch ready (InfiniteFuture if empty).
  bool TakeBatch(absl::Time now, bool draining, std::vector<QueuedJob>* batch,
                 absl::Time* retry_at);

  // False when TakeBatch cannot have become ready through the last Push
  // (so waiting workers need no wake-up): the queue held other jobs already
  // and, with no preferred sizes, all queued samples together are still
  // fewer than max_batch_size. Conservative: true may be a false alarm.
  bool MayBeReady() const;

  // Removes and returns every job.
  std::vector<QueuedJob> TakeAll();

  // One engine execution of `samples` samples took `compute` (feeds the
  // adaptive delay and whether batching pays).
  void RecordCompute(absl::Duration compute, int64_t samples);

  // Adaptive policy: false once the running means show that a sample costs
  // no less (by kMinBatchSaving) in a batch than alone; true while either is
  // unknown.
  bool BatchingPays() const;

  // How long the batch last returned by TakeBatch was held back for company
  // after a TakeBatch first found it could not start yet (zero when it
  // started the first time it was considered).
  absl::Duration last_hold() const { return last_hold_; }

 private:
  bool IsPreferred(int64_t samples) const;
  // When a batch of `samples` (not ready by the fixed rules) should start:
  // `now`, or a later time at most `oldest_due` (see the adaptive delay).
  absl::Time HoldUntil(absl::Time now, int64_t samples, absl::Time oldest_due) const;
  // Moves jobs_[i] for each i in `indices` (ascending) to `batch` at `now`.
  void Extract(const std::vector<size_t>& indices, std::vector<QueuedJob>* batch, absl::Time now);

  const int max_batch_size_;
  const absl::Duration max_queue_delay_;
  const std::vector<int> preferred_batch_sizes_;
  const bool adaptive_;
  std::deque<QueuedJob> jobs_;
  int64_t samples_ = 0;
  // At or before the earliest deadline of a queued job (InfiniteFuture when
  // none): exact after a Sweep, possibly early after jobs left otherwise.
  absl::Time earliest_deadline_ = absl::InfiniteFuture();
  std::vector<size_t> scratch_;  // indices of the batch being formed

  // Adaptive delay estimates, in seconds; negative while unknown.
  absl::Time last_arrival_ = absl::InfinitePast();
  double arrival_gap_ = -1;         // running mean gap between arrivals, per sample
  double compute_ = -1;             // running mean engine time per execution
  double alone_per_sample_ = -1;    // ... per sample, 1-sample executions
  double batched_per_sample_ = -1;  // ... per sample, multi-sample executions
  int dispatches_unbatched_ = 0;    // since batching last ran as a probe
  // The head job TakeBatch last held back, and since when.
  const InferenceJob* held_job_ = nullptr;
  absl::Time held_since_;
  absl::Duration last_hold_;
};

// INVALID_ARGUMENT naming the first bad option, else OK.
absl::Status ValidateSchedulerOptions(const SchedulerOptions& options);

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_INTERNAL_BATCH_QUEUE_H_
