// InferenceCore's answers to Triton's extensions (declared in
// inference_core.h): model configuration, statistics, the repository index
// and explicit load / unload, and the extensions list, so that the gRPC and
// the REST frontend only translate them to their wire.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/core/inference_core.h"

#ifndef SEPCONV_VERSION
#define SEPCONV_VERSION "dev"
#endif

namespace sepconv {
namespace {

constexpr char kServerName[] = "sepconv-serve";

}  // namespace

absl::Status LoadParametersRefused(const std::string& first_parameter) {
  return absl::InvalidArgumentError(
      absl::StrCat("load parameters ('", first_parameter,
                   "') are not supported: the model loads from its folder in the repository"));
}

ServerMetadataInfo InferenceCore::ServerMetadata() const {
  ServerMetadataInfo info{kServerName, SEPCONV_VERSION, {}};
  // Triton's names. binary_tensor_data is REST's; Triton lists it for both.
  info.extensions = {"binary_tensor_data", "model_configuration", "model_repository", "statistics"};
  if (shared_memory() != nullptr) info.extensions.push_back("system_shared_memory");
  return info;
}

absl::StatusOr<sepconv::ModelConfig> InferenceCore::ModelConfig(const std::string& name,
                                                                const std::string& version) const {
  absl::StatusOr<std::shared_ptr<ServedModel>> model = registry_->Find(name, version);
  if (!model.ok()) return model.status();
  return (*model)->config();
}

absl::StatusOr<std::vector<ModelVersionStats>> InferenceCore::ModelStatistics(
    const std::string& name, const std::string& version) const {
  if (!name.empty()) {
    // NOT_FOUND (unknown model or version) or UNAVAILABLE (not ready).
    absl::StatusOr<std::shared_ptr<ServedModel>> found = registry_->Find(name, version);
    if (!found.ok()) return found.status();
  }
  std::vector<ModelVersionStats> stats;
  for (const std::shared_ptr<ServedModel>& model : registry_->LoadedModels()) {
    if (!name.empty() && model->name() != name) continue;
    if (!version.empty() && model->version() != version) continue;
    if (model->metrics() == nullptr) {
      return absl::UnavailableError(
          "statistics are kept by the metrics, which are off (--metrics_port=0)");
    }
    stats.push_back({model->name(), model->version(), model->metrics()->Stats()});
  }
  return stats;
}

std::vector<ModelIndexEntry> InferenceCore::RepositoryIndex(bool ready_only) const {
  std::vector<ModelIndexEntry> index =
      options_.control != nullptr ? options_.control->Index() : IndexFromRegistry(*registry_);
  if (ready_only) {
    std::vector<ModelIndexEntry> ready;
    for (ModelIndexEntry& entry : index) {
      if (entry.state == "READY") ready.push_back(std::move(entry));
    }
    index.swap(ready);
  }
  return index;
}

absl::Status InferenceCore::CheckModelControl(const std::string& name) const {
  if (options_.control == nullptr) return absl::UnavailableError(kModelControlDisabled);
  if (name.empty()) return absl::InvalidArgumentError("model_name is empty");
  return absl::OkStatus();
}

absl::Status InferenceCore::LoadModel(const std::string& name) const {
  if (absl::Status ok = CheckModelControl(name); !ok.ok()) return ok;
  return options_.control->Load(name);
}

absl::Status InferenceCore::UnloadModel(const std::string& name) const {
  if (absl::Status ok = CheckModelControl(name); !ok.ok()) return ok;
  return options_.control->Unload(name);
}

}  // namespace sepconv
