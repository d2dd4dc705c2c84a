#ifndef SEPCONV_SERVER_REPOSITORY_SYNC_H_
#define SEPCONV_SERVER_REPOSITORY_SYNC_H_

// Keeps a ModelRegistry in step with a ModelRepository: applies each Poll's
// diff (new and changed versions start serving, failed ones are listed as
// not ready with their reason, removed ones stop after draining), once at
// startup and, in poll mode, periodically on a thread of its own.
// Thread-safe; the poller thread is joined by Stop or the destructor.

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/model_repository.h"
#include "server/server.h"

namespace sepconv {

// Applies `diff` to `registry`. Engine and batching settings come from
// `options` (threads, instances, exit_timeout for draining displaced
// versions) overridden by each model's config. Returns the first load
// failure, for a startup log line; the registry has every outcome either way.
absl::Status ApplyRepositoryDiff(const RepositoryDiff& diff, const ServerOptions& options,
                                 Metrics* metrics, ModelRegistry* registry);

class RepositorySync {
 public:
  // Polls once (NOT_FOUND etc. when the root cannot be listed); with a
  // positive `poll_interval`, keeps polling in the background.
  static absl::StatusOr<std::unique_ptr<RepositorySync>> Start(
      const std::string& root, const ServerOptions& options, Metrics* metrics,
      std::shared_ptr<ModelRegistry> registry, absl::Duration poll_interval);
  ~RepositorySync();

  // Stops polling (waits for a poll in progress). Idempotent.
  void Stop();
  // One poll now (also what the thread does).
  absl::Status PollOnce();

 private:
  RepositorySync(const std::string& root, const ServerOptions& options, Metrics* metrics,
                 std::shared_ptr<ModelRegistry> registry);
  void Loop(absl::Duration interval);

  const ServerOptions options_;
  Metrics* const metrics_;
  const std::shared_ptr<ModelRegistry> registry_;
  absl::Mutex poll_mu_;
  ModelRepository repository_ ABSL_GUARDED_BY(poll_mu_);
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_REPOSITORY_SYNC_H_
