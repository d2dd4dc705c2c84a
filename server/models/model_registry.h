#ifndef SEPCONV_SERVER_MODELS_MODEL_REGISTRY_H_
#define SEPCONV_SERVER_MODELS_MODEL_REGISTRY_H_

// The models being served: name -> version -> a ServedModel, or the reason a
// version cannot be served (failed to load, being loaded). Versions can be
// added, replaced and removed while requests run: lookups hand out
// shared_ptrs, so a replaced or removed version lives on until its last
// request is done. The registry never shuts a model down itself; mutators
// return the model they displaced and the caller calls ServedModel::Shutdown
// on it (not from one of that model's worker threads).
//
// Version order: numeric versions compare as numbers, others by string,
// numbers before strings. An empty requested version means the highest ready
// version (KServe: "the server chooses").
//
// Thread-safe. Observers run after each change, outside the lock, on the
// mutating thread.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/models/served_model.h"

namespace sepconv {

struct VersionStatus {
  std::string version;
  bool ready = false;
  std::string reason;  // why it is not ready; empty when ready
};

class ModelRegistry {
 public:
  ModelRegistry() = default;
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Serves `model` under its name and version, replacing what was there.
  // Returns the displaced model (null if none).
  std::shared_ptr<ServedModel> AddOrReplace(std::shared_ptr<ServedModel> model);
  // Lists (name, version) as known but not servable, with `reason`
  // (e.g. a load error). Returns the displaced model (null if none).
  std::shared_ptr<ServedModel> MarkUnavailable(const std::string& name, const std::string& version,
                                               std::string reason);
  // Forgets (name, version); the model disappears when its last version does.
  // Returns the removed model (null if none or it was not loaded).
  std::shared_ptr<ServedModel> Remove(const std::string& name, const std::string& version);

  // The model to run a request on: NOT_FOUND for an unknown model or version,
  // UNAVAILABLE (with the reason) for a known version that is not ready.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(const std::string& name,
                                                    const std::string& version) const;
  // Whether Find would succeed.
  bool IsReady(const std::string& name, const std::string& version) const;
  // Every version of `name` in ascending order; NOT_FOUND if unknown.
  absl::StatusOr<std::vector<VersionStatus>> Versions(const std::string& name) const;
  // Model names, sorted.
  std::vector<std::string> ModelNames() const;
  // Every loaded model version (for shutdown and metrics).
  std::vector<std::shared_ptr<ServedModel>> LoadedModels() const;
  // True when every known model has a ready version (vacuously with none).
  bool AllModelsReady() const;

  // `observer` runs after every change. Register before serving.
  void AddObserver(std::function<void()> observer);

 private:
  struct Entry {
    std::shared_ptr<ServedModel> model;  // null when not servable
    std::string reason;
  };
  // Numbers first (by value), then other strings.
  struct VersionLess {
    bool operator()(const std::string& a, const std::string& b) const;
  };
  using VersionMap = std::map<std::string, Entry, VersionLess>;

  std::shared_ptr<ServedModel> Put(const std::string& name, const std::string& version,
                                   Entry entry);
  void Notify();

  mutable absl::Mutex mu_;
  std::map<std::string, VersionMap> models_ ABSL_GUARDED_BY(mu_);
  absl::Mutex observers_mu_;
  std::vector<std::function<void()>> observers_ ABSL_GUARDED_BY(observers_mu_);
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_MODEL_REGISTRY_H_
