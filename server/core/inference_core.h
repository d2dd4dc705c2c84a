#ifndef SEPCONV_SERVER_CORE_INFERENCE_CORE_H_
#define SEPCONV_SERVER_CORE_INFERENCE_CORE_H_

// The protocol-free inference core both frontends (gRPC, REST) run requests
// through: authentication's outcome, the model lookup (one more lookup when
// the version is replaced between lookup and submit), the shutdown refusal,
// validation (request_validation.h), limits (request_limits.h), the model's
// batcher, the deadline, the client's cancellation, metrics and the failure
// log -- each once, whatever the frontend. Frontends parse their wire into
// an InferRequest (views into their own buffers) and hand an
// OutputAllocator that sizes their response; the core never copies a tensor
// (except misaligned raw bytes, input_tensor.h).
//
// Metrics: every Infer outcome for a served model version is recorded
// through that version's ModelMetrics (RequestDone), validation failures
// included. Requests naming an unknown model or version, or a version that
// is not ready, are not recorded: those labels would come from the client,
// and letting clients mint label values would grow the metrics without
// bound. Every failure is written to the request log (rate-limited).
//
// Lifetimes: a queued job holds a lease (shared_ptr) on the model version
// it runs on, so an unload cannot free it under the job; its completion
// captures neither the core nor a raw metrics pointer, so the core may be
// destroyed once every request's `done` has run.
//
// Thread-safe: frontends call everything concurrently.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/auth.h"
#include "server/core/cancellation.h"
#include "server/core/infer_request.h"
#include "server/core/request_limits.h"
#include "server/core/request_log.h"
#include "server/core/shared_memory.h"
#include "server/models/model_registry.h"
#include "server/models/repository_control.h"

namespace sepconv {

// Security and limits. With `auth`, Infer and the metadata calls need a
// valid bearer token (frontends ask Authenticate; UNAUTHENTICATED otherwise,
// recorded under the model's metrics when the named model exists); liveness
// and readiness stay open for probes. `limits` are checked after
// validation, before the output is allocated (RESOURCE_EXHAUSTED).
struct CoreOptions {
  std::shared_ptr<TokenAuthenticator> auth;  // null: no auth; main reloads it
  std::shared_ptr<RequestLog> request_log;   // null: no failure log
  RequestLimits limits;
  // Triton's system shared-memory regions, for both frontends; null: off
  // (a request naming a region is INVALID_ARGUMENT).
  std::shared_ptr<SharedMemoryRegistry> shared_memory;
  // Triton's repository extension (index, explicit load / unload); null: no
  // repository, the index comes from the registry and load / unload answer
  // UNAVAILABLE(kModelControlDisabled).
  std::shared_ptr<RepositoryControl> control;
};

// options.shared_memory when it is on, else null.
inline SharedMemoryRegistry* EnabledRegions(const CoreOptions& options) {
  SharedMemoryRegistry* regions = options.shared_memory.get();
  return regions != nullptr && regions->enabled() ? regions : nullptr;
}

// Why a load with parameters (config or file overrides) is refused.
absl::Status LoadParametersRefused(const std::string& first_parameter);

// What the core needs from the transport carrying one request.
struct InferCall {
  absl::Status auth;                             // Authenticate's result for the call
  absl::Time start;                              // when the request arrived
  absl::Time deadline = absl::InfiniteFuture();  // the transport's deadline
  // Fired when the client cancels; null means never. A request still queued
  // when it fires ends CANCELLED without being computed.
  std::shared_ptr<Cancellation> cancellation;
  std::string peer;  // for the failure log
};

// KServe v2 server metadata.
struct ServerMetadataInfo {
  std::string name;
  std::string version;
  // Triton's names for the extensions served, the same over gRPC and REST.
  std::vector<std::string> extensions;
};

// One model version's cumulative statistics (Triton's ModelStatistics).
struct ModelVersionStats {
  std::string name;
  std::string version;
  ModelStatsSnapshot stats;
};

// KServe v2 model metadata; variable dims are -1.
struct TensorMetadataInfo {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
};
struct ModelMetadataInfo {
  std::string name;
  std::vector<std::string> versions;  // every version of the model, ascending
  std::string platform;
  std::vector<TensorMetadataInfo> inputs;
  std::vector<TensorMetadataInfo> outputs;
};

// Bytes of one request's input and of its output.
struct TensorBytes {
  size_t input = 0;
  size_t output = 0;
};

class InferenceCore {
 public:
  InferenceCore(std::shared_ptr<const ModelRegistry> registry, CoreOptions options);

  // OK when auth is off or `authorization` ("Bearer <token>"; empty when
  // the call had none) carries a valid token; UNAUTHENTICATED otherwise.
  absl::Status Authenticate(absl::string_view authorization) const;

  // Readiness: false once shutdown began. ModelReady is false (not an
  // error) for unknown models, so probes can poll before a model loads.
  bool Ready() const;
  bool ModelReady(const std::string& name, const std::string& version) const;

  ServerMetadataInfo ServerMetadata() const;
  // NOT_FOUND for an unknown model or version. The caller checks auth.
  absl::StatusOr<ModelMetadataInfo> ModelMetadata(const std::string& name,
                                                  const std::string& version) const;

  // Triton's extensions, the same answers for both frontends; the caller
  // checks auth. ModelConfig: the version's effective config
  // (server/models/served_config.h); NOT_FOUND for an unknown model or
  // version. ModelStatistics: per loaded version (all models when the name is
  // empty, all versions when the version is empty), read from the same series
  // as /metrics; NOT_FOUND / UNAVAILABLE as the lookup for a named model,
  // UNAVAILABLE when metrics are off.
  absl::StatusOr<sepconv::ModelConfig> ModelConfig(const std::string& name,
                                                   const std::string& version) const;
  absl::StatusOr<std::vector<ModelVersionStats>> ModelStatistics(const std::string& name,
                                                                 const std::string& version) const;
  // The repository's index (only READY rows with `ready_only`), and explicit
  // load / unload (RepositoryControl's; UNAVAILABLE(kModelControlDisabled)
  // without a repository in explicit mode, INVALID_ARGUMENT for an empty
  // name). Load and unload run on the calling thread (unload waits for the
  // model's queue to drain).
  std::vector<ModelIndexEntry> RepositoryIndex(bool ready_only) const;
  // Whether load / unload of `name` may go on (the checks LoadModel and
  // UnloadModel make first), for frontends that check more after it.
  absl::Status CheckModelControl(const std::string& name) const;
  absl::Status LoadModel(const std::string& name) const;
  absl::Status UnloadModel(const std::string& name) const;

  // Runs one request: `call.auth` (the caller's Authenticate result), lookup
  // and retry, shutdown refusal, validation, limits, then `allocate` (once
  // per attempt: a retry on a replaced version calls it again, and the
  // frontend's answer must then replace the first) and the model's batcher.
  // The deadline is the earlier of call.deadline and the request's timeout.
  // Records the outcome, logs failures, then calls `done` exactly once:
  // inline when the request fails before reaching the batcher, otherwise on
  // a scheduler thread (or a canceller's). `request`, what its views point
  // into and the allocator's buffer must stay alive until `done` runs.
  void Infer(const InferRequest& request, InferCall call, OutputAllocator allocate,
             absl::AnyInvocable<void(absl::Status)> done);

  // Answers a request the frontend could not parse into a whole InferRequest
  // (`request` needs only model name and version) with `status`, as Infer
  // answers its own failures: recorded under the model version if it
  // exists, logged, then `done(status)` inline.
  void Refuse(const InferRequest& request, const InferCall& call, absl::Status status,
              absl::AnyInvocable<void(absl::Status)> done) const;

  // From now on Ready and ModelReady answer false and Infer refuses with
  // UNAVAILABLE; requests already submitted still complete. The refusals are
  // held until ReleaseRefusals (a client waiting for one sends nothing, so
  // nothing of it reaches a transport that is stopping and would cancel it
  // instead of answering a retryable UNAVAILABLE).
  void StartShutdown();
  bool shutting_down() const { return shutting_down_.load(); }
  // Answers the held refusals, and any later one at once. Idempotent.
  void ReleaseRefusals();
  // Refusals held now (tests wait for one to be held instead of sleeping).
  int held_refusals() const;

  const ModelRegistry& registry() const { return *registry_; }
  // The largest input and output among the loaded models' model_warmup
  // samples ({0, 0} without any): the request sizes a frontend keeps its
  // buffers mapped for, so that the first request after a load finds them
  // warm as the engine's plans are.
  TensorBytes LargestWarmupTensors() const;
  // The shared-memory regions the frontends register; null when off. The
  // caller checks auth.
  SharedMemoryRegistry* shared_memory() const { return EnabledRegions(options_); }

 private:
  const std::shared_ptr<const ModelRegistry> registry_;
  const CoreOptions options_;
  std::atomic<bool> shutting_down_{false};
  mutable absl::Mutex refusals_mu_;
  bool refusals_released_ ABSL_GUARDED_BY(refusals_mu_) = false;
  std::vector<absl::AnyInvocable<void()>> held_refusals_ ABSL_GUARDED_BY(refusals_mu_);
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_INFERENCE_CORE_H_
