#include "server/batching/internal/batch_queue.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sepconv {
namespace internal {
namespace {

bool SameChw(const Dims4& a, const Dims4& b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

// Weight of the newest observation in the running means: about the last
// eight arrivals and executions count.
constexpr double kNewWeight = 0.125;

void UpdateMean(double* mean, double value) {
  *mean = *mean < 0 ? value : *mean + kNewWeight * (value - *mean);
}

}  // namespace

absl::Status ValidateSchedulerOptions(const SchedulerOptions& options) {
  if (options.max_batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size must be >= 0, got ", options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue_delay must be >= 0, got ",
                                                   absl::FormatDuration(options.max_queue_delay)));
  }
  for (int size : options.preferred_batch_sizes) {
    if (size < 1 || (options.max_batch_size > 0 && size > options.max_batch_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("preferred batch size ", size,
                       " is outside [1, max_batch_size=", options.max_batch_size, "]"));
    }
  }
  if (options.max_queue_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_size must be >= 1, got ", options.max_queue_size));
  }
  if (options.instances < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("instances must be >= 1, got ", options.instances));
  }
  if (options.completion_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("completion_threads must be >= 1, got ", options.completion_threads));
  }
  return absl::OkStatus();
}

BatchQueue::BatchQueue(const SchedulerOptions& options)
    : max_batch_size_(options.max_batch_size),
      max_queue_delay_(options.max_queue_delay),
      preferred_batch_sizes_(options.preferred_batch_sizes),
      adaptive_(options.adaptive_queue_delay) {
  scratch_.reserve(std::max(1, max_batch_size_));
}

void BatchQueue::Push(std::unique_ptr<InferenceJob> job, absl::Time now) {
  samples_ += job->dims.n;
  if (last_arrival_ != absl::InfinitePast()) {
    // Gaps beyond max_queue_delay all mean "nobody comes in time"; capping
    // them lets the mean recover within a few arrivals after an idle spell.
    const absl::Duration gap = std::min(now - last_arrival_, max_queue_delay_);
    UpdateMean(&arrival_gap_, absl::ToDoubleSeconds(std::max(gap, absl::ZeroDuration())) /
                                  static_cast<double>(job->dims.n));
  }
  last_arrival_ = std::max(last_arrival_, now);
  earliest_deadline_ = std::min(earliest_deadline_, job->deadline);
  jobs_.push_back(QueuedJob{std::move(job), now});
}

absl::Time BatchQueue::Sweep(absl::Time now, std::vector<DroppedJob>* dropped) {
  if (now < earliest_deadline_) return earliest_deadline_;
  absl::Time earliest = absl::InfiniteFuture();
  bool any_dropped = false;
  for (QueuedJob& queued : jobs_) {
    const InferenceJob& job = *queued.job;
    if (job.deadline > now) {
      earliest = std::min(earliest, job.deadline);
      continue;
    }
    absl::Status why = absl::DeadlineExceededError(
        absl::StrCat("deadline exceeded after ", absl::FormatDuration(now - queued.enqueued),
                     " in the queue; the request was not computed"));
    samples_ -= job.dims.n;
    if (&job == held_job_) held_job_ = nullptr;
    dropped->push_back(DroppedJob{std::move(queued), std::move(why)});
    any_dropped = true;
  }
  if (any_dropped) {
    jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                               [](const QueuedJob& queued) { return queued.job == nullptr; }),
                jobs_.end());
  }
  earliest_deadline_ = earliest;
  return earliest;
}

QueuedJob BatchQueue::Remove(uint64_t id) {
  auto it = std::find_if(jobs_.begin(), jobs_.end(),
                         [id](const QueuedJob& queued) { return queued.job->id == id; });
  if (it == jobs_.end()) return QueuedJob{};
  QueuedJob removed = std::move(*it);
  jobs_.erase(it);
  samples_ -= removed.job->dims.n;
  if (removed.job.get() == held_job_) held_job_ = nullptr;
  if (jobs_.empty()) earliest_deadline_ = absl::InfiniteFuture();
  return removed;
}

bool BatchQueue::MayBeReady() const {
  return jobs_.size() == 1 || max_batch_size_ == 0 || !preferred_batch_sizes_.empty() ||
         samples_ >= max_batch_size_;
}

bool BatchQueue::IsPreferred(int64_t samples) const {
  return std::find(preferred_batch_sizes_.begin(), preferred_batch_sizes_.end(), samples) !=
         preferred_batch_sizes_.end();
}

void BatchQueue::RecordCompute(absl::Duration compute, int64_t samples) {
  const double seconds = absl::ToDoubleSeconds(std::max(compute, absl::ZeroDuration()));
  UpdateMean(&compute_, seconds);
  if (samples < 1) return;
  UpdateMean(samples == 1 ? &alone_per_sample_ : &batched_per_sample_,
             seconds / static_cast<double>(samples));
}

bool BatchQueue::BatchingPays() const {
  if (alone_per_sample_ <= 0 || batched_per_sample_ <= 0) return true;  // unknown
  return batched_per_sample_ < alone_per_sample_ * (1 - kMinBatchSaving);
}

absl::Time BatchQueue::HoldUntil(absl::Time now, int64_t samples, absl::Time oldest_due) const {
  if (!adaptive_) return oldest_due;
  if (arrival_gap_ < 0 || compute_ < 0) return now;  // no history: never hold a lone request
  // A pause since the last arrival is a gap too: the rate may have dropped.
  const double gap = std::max(arrival_gap_, absl::ToDoubleSeconds(now - last_arrival_));
  // Fewer than one arrival per execution: the engine keeps up unbatched, so
  // waiting would only add latency.
  if (gap >= compute_) return now;
  const absl::Time filled =
      now + absl::Seconds(gap * static_cast<double>(max_batch_size_ - samples));
  if (filled > oldest_due) return now;  // cannot fill within max_queue_delay
  // Re-decide no later than when the silence since the last arrival alone
  // would show that the engine keeps up.
  return std::min(filled, last_arrival_ + absl::Seconds(compute_));
}

void BatchQueue::Extract(const std::vector<size_t>& indices, std::vector<QueuedJob>* batch,
                         absl::Time now) {
  last_hold_ =
      jobs_[indices.front()].job.get() == held_job_ ? now - held_since_ : absl::ZeroDuration();
  held_job_ = nullptr;
  for (size_t i : indices) {
    samples_ -= jobs_[i].job->dims.n;
    batch->push_back(std::move(jobs_[i]));
  }
  if (indices.size() == jobs_.size()) earliest_deadline_ = absl::InfiniteFuture();
  if (indices.back() + 1 == indices.size()) {  // a prefix: the common case
    jobs_.erase(jobs_.begin(), jobs_.begin() + static_cast<std::ptrdiff_t>(indices.size()));
    return;
  }
  jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                             [](const QueuedJob& queued) { return queued.job == nullptr; }),
              jobs_.end());
}

bool BatchQueue::TakeBatch(absl::Time now, bool draining, std::vector<QueuedJob>* batch,
                           absl::Time* retry_at) {
  *retry_at = absl::InfiniteFuture();
  if (jobs_.empty()) return false;
  const QueuedJob& head = jobs_.front();
  scratch_.clear();
  scratch_.push_back(0);
  if (max_batch_size_ == 0 || head.job->dims.n >= max_batch_size_) {
    Extract(scratch_, batch, now);
    return true;
  }
  if (adaptive_ && !draining && !BatchingPays()) {
    if (++dispatches_unbatched_ < kBatchProbeEvery) {
      Extract(scratch_, batch, now);
      return true;
    }
    dispatches_unbatched_ = 0;  // this one batches, as a probe
  }

  int64_t samples = head.job->dims.n;
  size_t preferred_prefix = IsPreferred(samples) ? 1 : 0;
  bool left_out = false;  // a job of this shape did not fit
  for (size_t i = 1; i < jobs_.size() && samples < max_batch_size_; ++i) {
    const InferenceJob& job = *jobs_[i].job;
    if (!SameChw(job.dims, head.job->dims)) continue;
    if (samples + job.dims.n > max_batch_size_) {
      left_out = true;
      continue;
    }
    scratch_.push_back(i);
    samples += job.dims.n;
    if (IsPreferred(samples)) preferred_prefix = scratch_.size();
  }

  const absl::Time oldest_due = head.enqueued + max_queue_delay_;
  if (samples >= max_batch_size_ || left_out || draining || now >= oldest_due) {
    Extract(scratch_, batch, now);
    return true;
  }
  if (preferred_prefix > 0) {
    scratch_.resize(preferred_prefix);
    Extract(scratch_, batch, now);
    return true;
  }
  const absl::Time hold_until = HoldUntil(now, samples, oldest_due);
  if (hold_until <= now) {
    Extract(scratch_, batch, now);
    return true;
  }
  if (held_job_ != head.job.get()) {
    held_job_ = head.job.get();
    held_since_ = now;
  }
  *retry_at = hold_until;
  return false;
}

std::vector<QueuedJob> BatchQueue::TakeAll() {
  std::vector<QueuedJob> all(std::make_move_iterator(jobs_.begin()),
                             std::make_move_iterator(jobs_.end()));
  jobs_.clear();
  samples_ = 0;
  earliest_deadline_ = absl::InfiniteFuture();
  held_job_ = nullptr;
  return all;
}

}  // namespace internal
}  // namespace sepconv
