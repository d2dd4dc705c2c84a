#ifndef SEPCONV_SERVER_MODELS_MODEL_REPOSITORY_H_
#define SEPCONV_SERVER_MODELS_MODEL_REPOSITORY_H_

// A model repository in Triton's layout, scanned on demand:
//
//   ROOT/<model>/config.pbtxt          optional (see proto/model_config.proto)
//   ROOT/<model>/<version>/model.onnx  version folders: positive integers
//                                      without leading zeros; others ignored
//
// Each Poll rescans ROOT, loads the (model, version)s that the version
// policy selects (default: the latest one) and that are new or whose files
// changed (config text, model file size or mtime), and reports the
// difference from the previous Poll. A model whose config describes layers
// (`sepconv { ... }`) needs no ONNX file; with no version folder at all it is
// served as version 1. Failures are per (model, version) and never stop the
// others; a model-level failure (unreadable or invalid config, no version
// folder) is reported as version 0 and leaves that model's previously loaded
// versions as they were.
//
// Plain C++ (no gRPC): the server's registry applies the diff. Not
// thread-safe: call Poll from one thread (the poller) at a time.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/loader/model_source.h"
#include "server/batching/scheduler.h"

namespace sepconv {

struct RepositoryOptions {
  std::string root;
  // Scheduler settings for models without config.pbtxt; also the queue
  // bound used when a config leaves max_queue_size at 0.
  SchedulerOptions default_scheduler;
  // Tests only: runs on the polling thread after ROOT is listed and before
  // each model folder is scanned (to change the folder mid-scan).
  std::function<void(const std::string& model)> before_model_scan;
};

// The outcome of loading one (model, version).
struct VersionLoad {
  std::string model;
  int64_t version = 0;  // 0: a model-level failure
  absl::Status status;  // OK, or why it cannot be served
  // Set when status is OK.
  std::shared_ptr<const LoadedModel> loaded;
  SchedulerOptions scheduler;  // SchedulerOptionsFromConfig of the config
};

struct RepositoryDiff {
  std::vector<VersionLoad> added;    // not seen by the previous Poll
  std::vector<VersionLoad> changed;  // files changed: reloaded (OK or not)
  // Gone from disk or no longer selected by the version policy; version 0
  // here means a model-level failure was resolved.
  std::vector<std::pair<std::string, int64_t>> removed;
  // Every version the policy selects now, per model whose scan succeeded.
  std::map<std::string, std::vector<int64_t>> selected;

  bool empty() const { return added.empty() && changed.empty() && removed.empty(); }
};

// Scheduler settings for a model's completed config: Triton's semantics,
// so batching is off (max_batch_size 0) without `dynamic_batching`; then
// the configured delay, preferred sizes and queue bound (0: the default's),
// and instances from instance_group counts (default's when none).
SchedulerOptions SchedulerOptionsFromConfig(const ModelConfig& config,
                                            const SchedulerOptions& defaults);

// The model folders of the repository at `root` (names not starting with
// '.'), sorted. NOT_FOUND / PERMISSION_DENIED / UNAVAILABLE when `root`
// cannot be listed.
absl::StatusOr<std::vector<std::string>> ListModelFolders(const std::string& root);

// The config a model without config.pbtxt gets: batching as `defaults` say.
ModelConfig DefaultModelConfig(const SchedulerOptions& defaults);

class ModelRepository {
 public:
  explicit ModelRepository(RepositoryOptions options);

  // Rescans and loads; the first call reports everything as added. Errors
  // only when ROOT itself cannot be listed (NOT_FOUND / PERMISSION_DENIED,
  // UNAVAILABLE when listing fails midway), or, as UNAVAILABLE, when the scan
  // hit an exception; never throws. On error the state is unchanged: the
  // next Poll reports against the last successful one. A model folder that
  // vanishes or cannot be read mid-scan is a model-level failure (version 0),
  // so the versions it had stay loaded until a later Poll no longer lists it.
  absl::StatusOr<RepositoryDiff> Poll();
  // The same for the one model `name` (explicit model control): the other
  // models' state is left as it is. NOT_FOUND when ROOT has no folder `name`.
  absl::StatusOr<RepositoryDiff> PollModel(const std::string& name);
  // Forgets what was loaded for `name`, so that the next Poll or PollModel
  // reports it as added (after an unload, or to retry a failed load).
  void Forget(const std::string& name);

  const RepositoryOptions& options() const { return options_; }

 private:
  struct Known {
    std::string fingerprint;
  };
  using Key = std::pair<std::string, int64_t>;

  absl::StatusOr<RepositoryDiff> Scan();
  // Scans `names`; with `whole_repository`, known models not among them
  // count as removed, otherwise they are kept as they were.
  absl::StatusOr<RepositoryDiff> ScanModels(const std::vector<std::string>& names,
                                            bool whole_repository);

  RepositoryOptions options_;
  std::map<Key, Known> known_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_MODEL_REPOSITORY_H_
