#ifndef SEPCONV_SERVER_MODELS_REPOSITORY_CONTROL_H_
#define SEPCONV_SERVER_MODELS_REPOSITORY_CONTROL_H_

// Triton's model repository extension as the RPCs see it: the index of the
// repository and explicit load / unload (`--model_control_mode=explicit`).
// Implemented by RepositorySync; the core holds it through
// CoreOptions::control (null: no repository, the built-in model only).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/models/model_registry.h"

namespace sepconv {

// Triton's answer to load / unload outside explicit mode (UNAVAILABLE), in
// modes none and poll alike.
inline constexpr char kModelControlDisabled[] =
    "explicit model load / unload is not allowed if polling is enabled";

// One row of RepositoryIndex, in Triton's terms: state "READY" or
// "UNAVAILABLE"; a model folder that is not loaded has no version and the
// reason "unloaded".
struct ModelIndexEntry {
  std::string name;
  std::string version;
  std::string state;
  std::string reason;
};

class RepositoryControl {
 public:
  virtual ~RepositoryControl() = default;

  // Every model folder of the repository and every version the registry
  // knows, sorted by name then version.
  virtual std::vector<ModelIndexEntry> Index() const = 0;
  // Loads `name` (or reloads it when its files changed) as its version
  // policy says. OK once a version serves; otherwise the loader's error
  // (naming the file and the node), NOT_FOUND for a name with no folder, or
  // UNAVAILABLE(kModelControlDisabled) outside explicit mode. Requests keep
  // being answered throughout: a replaced version drains first.
  virtual absl::Status Load(const std::string& name) = 0;
  // Stops serving `name`: its versions leave the registry (new requests get
  // NOT_FOUND), then their queued and running requests finish; returns after
  // that. OK when it was not loaded; NOT_FOUND when it is unknown altogether.
  virtual absl::Status Unload(const std::string& name) = 0;
};

// The registry's models and versions as index rows (READY, or UNAVAILABLE
// with the reason), sorted.
std::vector<ModelIndexEntry> IndexFromRegistry(const ModelRegistry& registry);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_REPOSITORY_CONTROL_H_
