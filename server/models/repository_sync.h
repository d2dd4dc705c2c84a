#ifndef SEPCONV_SERVER_MODELS_REPOSITORY_SYNC_H_
#define SEPCONV_SERVER_MODELS_REPOSITORY_SYNC_H_

// Keeps a ModelRegistry in step with a ModelRepository: applies each Poll's
// diff (new and changed versions start serving, failed ones are listed as
// not ready with their reason, removed ones stop after draining), once at
// startup and, in poll mode, periodically on a thread of its own.
// Thread-safe; the poller thread is joined by Stop or the destructor.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/metrics/metrics.h"
#include "server/models/model_options.h"
#include "server/models/model_registry.h"
#include "server/models/model_repository.h"
#include "server/models/repository_control.h"

namespace sepconv {

// Applies `diff` to `registry`. Engine and batching settings come from
// `options` (threads, instances, exit_timeout for draining displaced
// versions) overridden by each model's config. Returns the first load
// failure, for a startup log line; the registry has every outcome either way.
absl::Status ApplyRepositoryDiff(const RepositoryDiff& diff, const ModelOptions& options,
                                 Metrics* metrics, ModelRegistry* registry);

// Model control modes (Triton's): none loads everything once; poll also
// rescans periodically; explicit loads only what is named, at start-up and
// through Load / Unload (the RepositoryControl RPCs). Load and Unload answer
// UNAVAILABLE(kModelControlDisabled) outside explicit mode.
class RepositorySync : public RepositoryControl {
 public:
  // Polls once (NOT_FOUND etc. when the root cannot be listed); with a
  // positive `poll_interval`, keeps polling in the background.
  static absl::StatusOr<std::unique_ptr<RepositorySync>> Start(
      const std::string& root, const ModelOptions& options, Metrics* metrics,
      std::shared_ptr<ModelRegistry> registry, absl::Duration poll_interval);
  // Explicit mode: loads only `load_models` ("*" = every model). A name with
  // no folder is NOT_FOUND; a model that fails to load is listed as not
  // ready with its reason (as in mode none) and the start goes on.
  static absl::StatusOr<std::unique_ptr<RepositorySync>> StartExplicit(
      const std::string& root, const ModelOptions& options, Metrics* metrics,
      std::shared_ptr<ModelRegistry> registry, const std::vector<std::string>& load_models);
  ~RepositorySync() override;

  // RepositoryControl (see repository_control.h).
  std::vector<ModelIndexEntry> Index() const override;
  absl::Status Load(const std::string& name) override;
  absl::Status Unload(const std::string& name) override;

  // Stops polling (waits for a poll in progress). Idempotent.
  void Stop();
  // One poll now (also what the thread does).
  absl::Status PollOnce();

 private:
  RepositorySync(const std::string& root, const ModelOptions& options, Metrics* metrics,
                 std::shared_ptr<ModelRegistry> registry);
  void Loop(absl::Duration interval);

  const std::string root_;
  bool explicit_ = false;  // set before the sync is shared
  const ModelOptions options_;
  Metrics* const metrics_;
  const std::shared_ptr<ModelRegistry> registry_;
  absl::Mutex poll_mu_;
  ModelRepository repository_ ABSL_GUARDED_BY(poll_mu_);
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_REPOSITORY_SYNC_H_
