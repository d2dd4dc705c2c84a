#include "client/internal/http_workers.h"

#include <utility>

namespace sepconv::client::internal {

HttpWorkers::HttpWorkers(Connect connect) : connect_(std::move(connect)) {}

HttpWorkers::~HttpWorkers() { Close(); }

void HttpWorkers::Submit(Run run, Cancel cancel) {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      queue_.push_back({std::move(run), std::move(cancel)});
      // A job whose Finish submits the next one (a closed loop) has left
      // `active_` by then: its worker is free for it.
      if (++active_ > workers_.size()) {
        auto worker = std::make_unique<Worker>();
        worker->connection = connect_();
        HttpConnection* connection = worker->connection.get();
        worker->thread = std::thread([this, connection] { Work(connection); });
        workers_.push_back(std::move(worker));
      }
      return;
    }
  }
  cancel();
}

void HttpWorkers::Work(HttpConnection* connection) {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](HttpWorkers* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return !self->queue_.empty() || self->closed_;
          },
          this));
      if (queue_.empty()) return;  // closed
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Finish finish = job.run(*connection, closing_);
    {
      absl::MutexLock lock(&mu_);
      --active_;
    }
    finish();
  }
}

void HttpWorkers::Close() {
  std::deque<Job> queued;
  std::vector<std::unique_ptr<Worker>> workers;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    queued.swap(queue_);
    workers.swap(workers_);
  }
  for (Job& job : queued) job.cancel();
  // Ends the calls in flight.
  for (const auto& worker : workers) worker->connection->Stop();
  for (const auto& worker : workers) worker->thread.join();
}

}  // namespace sepconv::client::internal
