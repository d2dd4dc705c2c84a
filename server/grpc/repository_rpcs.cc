// Triton's RepositoryIndex, RepositoryModelLoad and RepositoryModelUnload
// (declared in inference_service.h; the work is RepositoryControl's).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/status_util.h"

namespace sepconv {
namespace {

// What load and unload have in common: auth, explicit mode, a model name.
absl::Status CheckControl(const absl::Status& auth, const RepositoryControl* control,
                          const std::string& model_name) {
  if (!auth.ok()) return auth;
  if (control == nullptr) return absl::UnavailableError(kModelControlDisabled);
  if (model_name.empty()) return absl::InvalidArgumentError("model_name is empty");
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  const std::vector<ModelIndexEntry> index =
      options_.control != nullptr ? options_.control->Index() : IndexFromRegistry(*registry_);
  for (const ModelIndexEntry& entry : index) {
    if (request->ready() && entry.state != "READY") continue;
    inference::RepositoryIndexResponse::ModelIndex* model = response->add_models();
    model->set_name(entry.name);
    model->set_version(entry.version);
    model->set_state(entry.state);
    model->set_reason(entry.reason);
  }
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  absl::Status status =
      CheckControl(Authenticate(*context), options_.control.get(), request->model_name());
  if (status.ok() && !request->parameters().empty()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("load parameters ('", request->parameters().begin()->first,
                     "') are not supported: the model loads from its folder in the repository"));
  }
  // Blocks this gRPC thread while the model loads: a rare control call.
  if (status.ok()) status = options_.control->Load(request->model_name());
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  absl::Status status =
      CheckControl(Authenticate(*context), options_.control.get(), request->model_name());
  // Blocks this gRPC thread until the model's requests have drained.
  if (status.ok()) status = options_.control->Unload(request->model_name());
  return FinishUnary(context, status);
}

}  // namespace sepconv
