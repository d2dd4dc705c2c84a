#include "server/models/repository_control.h"

namespace sepconv {

std::vector<ModelIndexEntry> IndexFromRegistry(const ModelRegistry& registry) {
  std::vector<ModelIndexEntry> index;
  for (const std::string& name : registry.ModelNames()) {
    absl::StatusOr<std::vector<VersionStatus>> versions = registry.Versions(name);
    if (!versions.ok()) continue;  // removed meanwhile
    for (const VersionStatus& version : *versions) {
      index.push_back(ModelIndexEntry{name, version.version,
                                      version.ready ? "READY" : "UNAVAILABLE", version.reason});
    }
  }
  return index;
}

}  // namespace sepconv
