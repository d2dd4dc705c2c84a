// Triton's RepositoryIndex, RepositoryModelLoad and RepositoryModelUnload
// (declared in inference_service.h; the work is the core's).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/status_util.h"

namespace sepconv {

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  for (const ModelIndexEntry& entry : core_->RepositoryIndex(request->ready())) {
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
  absl::Status status = Authenticate(*context);
  if (status.ok()) status = core_->CheckModelControl(request->model_name());
  if (status.ok() && !request->parameters().empty()) {
    status = LoadParametersRefused(request->parameters().begin()->first);
  }
  // Blocks this gRPC thread while the model loads: a rare control call.
  if (status.ok()) status = core_->LoadModel(request->model_name());
  return FinishUnary(context, status);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  absl::Status status = Authenticate(*context);
  // Blocks this gRPC thread until the model's requests have drained.
  if (status.ok()) status = core_->UnloadModel(request->model_name());
  return FinishUnary(context, status);
}

}  // namespace sepconv
