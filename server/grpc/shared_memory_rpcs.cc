// Triton's SystemSharedMemoryStatus, SystemSharedMemoryRegister and
// SystemSharedMemoryUnregister (declared in inference_service.h; the work is
// the core's SharedMemoryRegistry).

#include "absl/status/status.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/status_util.h"

namespace sepconv {
namespace {

// Auth first, then whether the extension is on.
absl::StatusOr<SharedMemoryRegistry*> Regions(const absl::Status& auth, const InferenceCore& core) {
  if (!auth.ok()) return auth;
  SharedMemoryRegistry* regions = core.shared_memory();
  if (regions == nullptr) {
    return absl::UnavailableError(kSharedMemoryOff);
  }
  return regions;
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryStatus(
    grpc::CallbackServerContext* context, const inference::SystemSharedMemoryStatusRequest* request,
    inference::SystemSharedMemoryStatusResponse* response) {
  absl::StatusOr<SharedMemoryRegistry*> regions = Regions(Authenticate(*context), *core_);
  if (!regions.ok()) return FinishUnary(context, regions.status());
  absl::StatusOr<std::vector<SharedMemoryRegionInfo>> infos = (*regions)->Status(request->name());
  if (!infos.ok()) return FinishUnary(context, infos.status());
  for (const SharedMemoryRegionInfo& info : *infos) {
    auto& status = (*response->mutable_regions())[info.name];
    status.set_name(info.name);
    status.set_key(info.key);
    status.set_offset(info.offset);
    status.set_byte_size(info.byte_size);
  }
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryRegister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryRegisterRequest* request,
    inference::SystemSharedMemoryRegisterResponse*) {
  absl::StatusOr<SharedMemoryRegistry*> regions = Regions(Authenticate(*context), *core_);
  if (!regions.ok()) return FinishUnary(context, regions.status());
  return FinishUnary(context, (*regions)->Register(request->name(), request->key(),
                                                   request->offset(), request->byte_size()));
}

grpc::ServerUnaryReactor* InferenceService::SystemSharedMemoryUnregister(
    grpc::CallbackServerContext* context,
    const inference::SystemSharedMemoryUnregisterRequest* request,
    inference::SystemSharedMemoryUnregisterResponse*) {
  absl::StatusOr<SharedMemoryRegistry*> regions = Regions(Authenticate(*context), *core_);
  if (!regions.ok()) return FinishUnary(context, regions.status());
  return FinishUnary(context, (*regions)->Unregister(request->name()));
}

}  // namespace sepconv
