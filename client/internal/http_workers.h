#ifndef SEPCONV_CLIENT_INTERNAL_HTTP_WORKERS_H_
#define SEPCONV_CLIENT_INTERNAL_HTTP_WORKERS_H_

// The threads behind the REST client's InferAsync. HTTP/1.1 carries one
// request at a time per connection and a connection's exchange blocks until
// the answer, so every call in flight takes a worker: a thread with a keep-alive
// connection of its own. The pool grows to as many workers as calls in
// flight (a load generator's concurrency) and keeps them, idle, for the next
// calls; it never shrinks.
//
// Thread-safe. Each job ends exactly once: its Finish on a worker, or its
// Cancel (a job submitted or still queued while the pool closes) on the
// submitting or closing thread.

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/internal/http_connection.h"

namespace sepconv::client::internal {

class HttpWorkers {
 public:
  // Makes a worker's connection (not yet connected).
  using Connect = std::function<std::unique_ptr<HttpConnection>()>;
  // Runs one call on the worker's connection and returns what ends the job
  // (its caller's callback), which the worker runs once it counts itself
  // free: a job ended there may submit the next without a worker more.
  // `closing` turns true when the pool closes (the connection is then shut
  // down under the call, which should give up rather than retry).
  using Finish = std::function<void()>;
  using Run = std::function<Finish(HttpConnection& connection, const std::atomic<bool>& closing)>;
  // Tells a job that it will not run (the pool closed first).
  using Cancel = std::function<void()>;

  explicit HttpWorkers(Connect connect);
  // Close().
  ~HttpWorkers();
  HttpWorkers(const HttpWorkers&) = delete;
  HttpWorkers& operator=(const HttpWorkers&) = delete;

  // Queues a job, starting a worker if every one is busy. A job that will
  // not run gets `cancel` instead, at once on this thread when the pool is
  // closing. Neither `run`, its Finish nor `cancel` may call Close.
  void Submit(Run run, Cancel cancel);

  // Refuses new jobs, cancels the queued ones, shuts down the connections
  // of the running ones and returns once every worker has ended. Not from a
  // job. Idempotent.
  void Close();

 private:
  struct Job {
    Run run;
    Cancel cancel;
  };
  struct Worker {
    std::unique_ptr<HttpConnection> connection;
    std::thread thread;
  };

  void Work(HttpConnection* connection);

  const Connect connect_;
  std::atomic<bool> closing_{false};
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  // Jobs queued or running (until their Finish starts).
  size_t active_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_HTTP_WORKERS_H_
