#ifndef SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_
#define SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_

// The KServe v2 `inference.GRPCInferenceService` on gRPC's callback API: thin
// adapters over the protocol-free InferenceCore (server/core/inference_core.h),
// which runs every inference request (auth outcome, lookup and retry,
// shutdown refusal, validation, limits, batching, deadline, cancellation,
// metrics, failure log). ModelInfer takes the request's bytes, parses them
// into a pooled message and that into views (infer_buffers.h,
// proto_request.h), hands the core an allocator that gives the engine a
// pooled output buffer, and returns; the scheduler's worker finishes the
// call, sending the answer's tensor from that buffer without a copy. A request's deadline is the earlier of its gRPC deadline and its
// `timeout` parameter (microseconds; 0 = none).
//
// Auth: with a token authenticator in the core, ModelInfer, ModelStreamInfer,
// ModelMetadata, ServerMetadata and Triton's extensions need
// "authorization: Bearer <token>"; ServerLive, ServerReady and ModelReady
// stay open for probes, as do gRPC health and reflection.
//
// ModelReady answers ready=false (not an error) for unknown models, so that
// readiness probes can poll before a model loads; ModelMetadata and
// ModelInfer answer NOT_FOUND.
//
// ModelStreamInfer (stream_infer.h) sends each request of a stream through
// the same core, so all of the above holds per request.
//
// Thread-safe: gRPC calls the handlers concurrently.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc_service.grpc.pb.h"
#include "server/core/inference_core.h"
#include "server/grpc/infer_buffers.h"
#include "server/grpc/stream_infer.h"
#include "server/models/model_registry.h"
#include "server/models/repository_control.h"

namespace sepconv {

// The gRPC-only options (auth, limits and the failure log are the core's).
struct InferenceServiceOptions {
  // ModelStreamInfer: requests one stream may have in the server at once
  // (read and not yet answered); the flow-control bound (stream_infer.h).
  int stream_max_in_flight = 16;
};

// ModelInfer takes and answers raw bytes (infer_buffers.h), the other
// methods their messages.
using InferenceServiceBase = inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
    inference::GRPCInferenceService::CallbackService>;

class InferenceService final : public InferenceServiceBase {
 public:
  // `core` runs the inference requests and answers readiness and metadata;
  // `registry` (the core's) serves Triton's extensions.
  InferenceService(std::shared_ptr<const ModelRegistry> registry,
                   std::shared_ptr<InferenceCore> core, InferenceServiceOptions options);

  // Ends open ModelStreamInfer streams UNAVAILABLE once their answers in
  // flight are written. The core's StartShutdown refuses new requests (and
  // holds the refusals: see InferenceCore); the server calls both.
  void StopStreams();

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  // A ModelInferRequest's bytes, parsed into a pooled message; the answer's
  // tensor is sent from the buffer the engine wrote it into.
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

  // Triton's extensions (server/grpc/model_info_rpcs.cc). Auth as ModelMetadata.
  // ModelConfig: the version's effective config (server/models/served_config.h);
  // NOT_FOUND for an unknown model or version. ModelStatistics: per loaded
  // version (all models when the name is empty, all versions when the
  // version is empty), read from the same series as /metrics (see
  // ModelStatsSnapshot); compute_input and compute_output stay empty, as
  // input and output copies are part of compute_infer here. UNAVAILABLE
  // when metrics are off (--metrics_port=0).
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

  // Repository control (server/grpc/repository_rpcs.cc; auth as above).
  // RepositoryIndex: the control's index (ready=true: READY rows only).
  // RepositoryModelLoad / Unload: RepositoryControl::Load / Unload, run on
  // the calling gRPC thread (rare control calls; unload waits for the
  // model's queue to drain); load `parameters` (config or file overrides)
  // are INVALID_ARGUMENT.
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

  // Triton's system shared-memory extension (server/grpc/shared_memory_rpcs.cc;
  // auth as above; UNAVAILABLE when it is off): the core's
  // SharedMemoryRegistry Status / Register / Unregister. Unregister waits,
  // on the calling gRPC thread, for the requests using the region.
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* context,
      const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse* response) override;

  // The core's Authenticate over the call's "authorization" metadata.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  // What the core needs from a call: auth, start, deadline, peer.
  InferCall CallFrom(const grpc::CallbackServerContext& context) const;

  // One ModelInferRequest through the core (ModelInfer and each request of
  // a stream), its output where `allocate` says: a parse error is answered
  // like any other failure (recorded, logged). `request` and the allocated
  // output must stay alive until `done` runs.
  void Infer(const inference::ModelInferRequest& request, OutputAllocator allocate, InferCall call,
             absl::AnyInvocable<void(absl::Status)> done);

  // Maps ModelInfer's pooled buffers for the largest model_warmup sample of
  // the loaded models (InferenceCore::LargestWarmupTensors); the server calls
  // it before serving and after each model change.
  void WarmBuffers();

 private:
  const std::shared_ptr<const ModelRegistry> registry_;
  const std::shared_ptr<InferenceCore> core_;
  const InferenceServiceOptions options_;
  OpenStreams open_streams_;
  // Unary ModelInfer's idle request messages and output buffers.
  const std::shared_ptr<InferBufferPool> buffers_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_
