#ifndef SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_
#define SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_

// The KServe v2 `inference.GRPCInferenceService` on gRPC's callback API.
// Handlers never compute: ModelInfer validates the request, sizes the
// response, hands an InferenceJob to the model's Scheduler and returns; the
// scheduler's worker calls Finish. A request's deadline is the earlier of
// its gRPC deadline and its `timeout` parameter (microseconds; 0 = none).
//
// Metrics: every ModelInfer outcome for a served model version is recorded
// through that version's ModelMetrics (RequestDone), validation failures
// included. Requests naming an unknown model or version, or a version that
// is not ready, are not recorded: those labels would come from the client,
// and letting clients mint label values would let them grow the metrics
// without bound.
//
// ModelReady answers ready=false (not an error) for unknown models, so that
// readiness probes can poll before a model loads; ModelMetadata and
// ModelInfer answer NOT_FOUND.
//
// ModelStreamInfer (stream_infer.h) sends each request of a stream through
// Infer, the same path as ModelInfer, so all of the above holds per request.
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
#include "server/core/auth.h"
#include "server/core/cancellation.h"
#include "server/core/request_limits.h"
#include "server/core/request_log.h"
#include "server/grpc/stream_infer.h"
#include "server/models/model_registry.h"
#include "server/models/repository_control.h"

namespace sepconv {

// Security and limits (added by "security"). With `auth`, ModelInfer,
// ModelMetadata and ServerMetadata need "authorization: Bearer <token>"
// (UNAUTHENTICATED otherwise, recorded under the model's metrics when the
// named model exists); ServerLive, ServerReady and ModelReady stay open for
// probes, as do gRPC health and reflection. Every failed ModelInfer is
// written to `request_log` (rate-limited). `limits` are checked after
// validation, before the output is allocated (RESOURCE_EXHAUSTED).
struct InferenceServiceOptions {
  std::shared_ptr<TokenAuthenticator> auth;  // null: no auth; main reloads it
  std::shared_ptr<RequestLog> request_log;   // null: no failure log
  RequestLimits limits;
  // ModelStreamInfer: requests one stream may have in the server at once
  // (read and not yet answered); the flow-control bound (stream_infer.h).
  int stream_max_in_flight = 16;
  // Triton's repository extension (RepositoryIndex, RepositoryModelLoad /
  // Unload); null: no repository, the index comes from the registry and
  // load / unload answer UNAVAILABLE(kModelControlDisabled).
  std::shared_ptr<RepositoryControl> control;
};

// What the inference path needs from the transport carrying one request.
struct InferCall {
  absl::Status auth;                             // Authenticate's result for the call
  absl::Time start;                              // when the request arrived
  absl::Time deadline = absl::InfiniteFuture();  // the transport's deadline
  // Fired when the client cancels; null means never. A request still queued
  // when it fires ends CANCELLED without being computed.
  std::shared_ptr<Cancellation> cancellation;
  std::string peer;  // for the failure log
};

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit InferenceService(std::shared_ptr<const ModelRegistry> registry);
  InferenceService(std::shared_ptr<const ModelRegistry> registry, InferenceServiceOptions options);

  // From now on ServerReady and ModelReady answer false and ModelInfer
  // refuses with UNAVAILABLE; requests already submitted still complete.
  // The refusals are held until ReleaseRefusals: a client waiting for one
  // sends nothing, so nothing of it reaches gRPC's Shutdown, which cancels
  // (CANCELLED, not retried) a call that arrives after it began and before
  // its GOAWAY reached the client. Open ModelStreamInfer streams end
  // UNAVAILABLE once their answers in flight are written.
  void StartShutdown();
  bool shutting_down() const { return shutting_down_.load(); }
  // Answers the held refusals, and any later one at once. Call after gRPC's
  // Shutdown has begun (it waits for the held calls). Idempotent.
  void ReleaseRefusals();

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
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
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

  // OK when auth is off or the call carries a valid token.
  absl::Status Authenticate(const grpc::CallbackServerContext& context) const;

  // The one inference path, shared by ModelInfer and ModelStreamInfer:
  // `call.auth` (the caller's Authenticate result), the model lookup (one
  // more lookup when the version is replaced between lookup and submit), the
  // shutdown check, validation, limits and the model's batcher. Records the
  // outcome in the model version's metrics, writes failures to the request
  // log, fills `response` on OK, then calls `done` exactly once: inline when
  // the request fails before reaching the batcher, otherwise on a scheduler
  // thread. `request` and `response` must stay alive until `done` runs.
  void Infer(const inference::ModelInferRequest& request, inference::ModelInferResponse* response,
             InferCall call, absl::AnyInvocable<void(absl::Status)> done);

 private:
  // Validates and submits one request to `model`; on OK the scheduler now
  // owns calling `done`.
  absl::Status SubmitInfer(const std::shared_ptr<ServedModel>& model,
                           const inference::ModelInferRequest& request,
                           inference::ModelInferResponse* response, InferCall& call,
                           absl::AnyInvocable<void(absl::Status)>& done);
  // Writes one failed request to the request log, if any.
  void LogFailure(const std::string& peer, const inference::ModelInferRequest& request,
                  const absl::Status& status) const;

  const std::shared_ptr<const ModelRegistry> registry_;
  const InferenceServiceOptions options_;
  std::atomic<bool> shutting_down_{false};
  OpenStreams open_streams_;
  absl::Mutex refusals_mu_;
  bool refusals_released_ ABSL_GUARDED_BY(refusals_mu_) = false;
  std::vector<absl::AnyInvocable<void()>> held_refusals_ ABSL_GUARDED_BY(refusals_mu_);
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_INFERENCE_SERVICE_H_
