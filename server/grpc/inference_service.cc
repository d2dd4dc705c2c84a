#include "server/grpc/inference_service.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/grpc/request_validation.h"
#include "server/grpc/status_util.h"
#include "server/grpc/tensor_conversion.h"

#ifndef SEPCONV_VERSION
#define SEPCONV_VERSION "dev"
#endif

namespace sepconv {
namespace {

constexpr char kServerName[] = "sepconv-serve";
constexpr char kPlatform[] = "sepconv_onednn";

absl::Status ShuttingDownError() {
  return absl::UnavailableError("server is shutting down; not accepting new requests");
}

// ModelInfer's reactor: turns the client's cancel into the request's
// Cancellation event. Frees itself when the call is done.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  const std::shared_ptr<Cancellation>& cancellation() const { return cancellation_; }
  void OnCancel() override { cancellation_->Cancel(); }
  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<Cancellation> cancellation_ = std::make_shared<Cancellation>();
};

// Job ids for Scheduler::Cancel, unique in the process.
uint64_t NextJobId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// Links one submitted job to its call's Cancellation: the hook registered
// after Submit, unregistered when the job is done, whichever comes first.
struct CancelLink {
  absl::Mutex mu;
  uint64_t hook ABSL_GUARDED_BY(mu) = 0;
  bool done ABSL_GUARDED_BY(mu) = false;
};

void Record(ModelMetrics* metrics, absl::StatusCode code, absl::Time start) {
  if (metrics != nullptr) metrics->RequestDone(code, absl::Now() - start);
}

// The earlier of the transport's deadline and the request's timeout.
absl::Time RequestDeadline(const InferCall& call, const ValidatedInfer& validated) {
  absl::Time deadline = call.deadline;
  if (validated.timeout.has_value() && *validated.timeout > absl::ZeroDuration()) {
    deadline = std::min(deadline, call.start + *validated.timeout);
  }
  return deadline;
}

void AddTensorMetadata(const char* name, int64_t channels,
                       inference::ModelMetadataResponse::TensorMetadata* tensor) {
  tensor->set_name(name);
  tensor->set_datatype(kDatatypeFp32);
  for (int64_t dim : {int64_t{-1}, channels, int64_t{-1}, int64_t{-1}}) tensor->add_shape(dim);
}

}  // namespace

InferenceService::InferenceService(std::shared_ptr<const ModelRegistry> registry)
    : InferenceService(std::move(registry), InferenceServiceOptions()) {}

InferenceService::InferenceService(std::shared_ptr<const ModelRegistry> registry,
                                   InferenceServiceOptions options)
    : registry_(std::move(registry)), options_(std::move(options)) {}

void InferenceService::StartShutdown() {
  shutting_down_.store(true);
  open_streams_.StopAll();
}

absl::Status InferenceService::Authenticate(const grpc::CallbackServerContext& context) const {
  if (options_.auth == nullptr) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return options_.auth->Check("");
  return options_.auth->Check(absl::string_view(it->second.data(), it->second.size()));
}

void InferenceService::LogFailure(const std::string& peer,
                                  const inference::ModelInferRequest& request,
                                  const absl::Status& status) const {
  if (options_.request_log == nullptr || status.ok()) return;
  FailedRequest failed;
  failed.code = status.code();
  failed.model = request.model_name();
  failed.version = request.model_version();
  failed.peer = peer;
  failed.reason = status.message();
  options_.request_log->Failed(failed);
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  response->set_ready(!shutting_down() && registry_->AllModelsReady());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  response->set_ready(!shutting_down() && registry_->IsReady(request->name(), request->version()));
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  response->set_name(kServerName);
  response->set_version(SEPCONV_VERSION);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  absl::StatusOr<std::shared_ptr<ServedModel>> model =
      registry_->Find(request->name(), request->version());
  if (!model.ok()) return FinishUnary(context, model.status());
  absl::StatusOr<std::vector<VersionStatus>> versions = registry_->Versions(request->name());
  if (!versions.ok()) return FinishUnary(context, versions.status());
  response->set_name(request->name());
  for (const VersionStatus& version : *versions) response->add_versions(version.version);
  response->set_platform(kPlatform);
  AddTensorMetadata(kInputName, (*model)->spec().InChannels(), response->add_inputs());
  AddTensorMetadata(kOutputName, (*model)->spec().OutChannels(), response->add_outputs());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                       const inference::ModelInferRequest* request,
                                                       inference::ModelInferResponse* response) {
  InferCall call;
  call.start = absl::Now();
  call.auth = Authenticate(*context);
  const auto grpc_deadline = context->deadline();
  if (grpc_deadline != std::chrono::system_clock::time_point::max()) {
    call.deadline = absl::FromChrono(grpc_deadline);
  }
  call.peer = context->peer();
  // Context, request and response live until OnDone, which frees the reactor.
  auto* reactor = new InferReactor();
  call.cancellation = reactor->cancellation();
  Infer(*request, response, std::move(call),
        [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return StartStreamInfer(this, context, options_.stream_max_in_flight, &open_streams_);
}

void InferenceService::Infer(const inference::ModelInferRequest& request,
                             inference::ModelInferResponse* response, InferCall call,
                             absl::AnyInvocable<void(absl::Status)> done) {
  if (!call.auth.ok()) {
    // Counted under the model only if it exists: clients mint no labels.
    absl::StatusOr<std::shared_ptr<ServedModel>> model =
        registry_->Find(request.model_name(), request.model_version());
    if (model.ok()) Record((*model)->metrics(), call.auth.code(), call.start);
    LogFailure(call.peer, request, call.auth);
    done(call.auth);
    return;
  }
  std::shared_ptr<ModelMetrics> metrics;
  absl::Status status;
  // A version replaced between lookup and submit rejects with UNAVAILABLE;
  // one more lookup then finds its successor.
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::shared_ptr<ServedModel>> model =
        registry_->Find(request.model_name(), request.model_version());
    if (!model.ok()) {
      LogFailure(call.peer, request, model.status());
      done(model.status());
      return;
    }
    metrics = (*model)->metrics_handle();
    if (shutting_down()) {
      status = ShuttingDownError();
      break;
    }
    status = SubmitInfer(*model, request, response, call, done);
    if (status.ok()) return;
    if (status.code() != absl::StatusCode::kUnavailable || shutting_down()) break;
    absl::StatusOr<std::shared_ptr<ServedModel>> again =
        registry_->Find(request.model_name(), request.model_version());
    if (!again.ok() || *again == *model) break;
    response->Clear();
  }
  auto refuse = [this, &request, metrics = std::move(metrics), start = call.start,
                 peer = std::move(call.peer), status, done = std::move(done)]() mutable {
    Record(metrics.get(), status.code(), start);
    LogFailure(peer, request, status);
    done(status);
  };
  if (status.code() == absl::StatusCode::kUnavailable && shutting_down()) {
    absl::MutexLock lock(&refusals_mu_);
    if (!refusals_released_) {
      held_refusals_.push_back(std::move(refuse));
      return;
    }
  }
  refuse();
}

void InferenceService::ReleaseRefusals() {
  std::vector<absl::AnyInvocable<void()>> held;
  {
    absl::MutexLock lock(&refusals_mu_);
    refusals_released_ = true;
    held.swap(held_refusals_);
  }
  for (absl::AnyInvocable<void()>& refuse : held) refuse();
}

absl::Status InferenceService::SubmitInfer(const std::shared_ptr<ServedModel>& served,
                                           const inference::ModelInferRequest& request,
                                           inference::ModelInferResponse* response, InferCall& call,
                                           absl::AnyInvocable<void(absl::Status)>& done) {
  const ServedModel& model = *served;
  absl::StatusOr<ValidatedInfer> validated = ValidateInferRequest(request, model.spec());
  if (!validated.ok()) return validated.status();
  if (absl::Status limited =
          CheckRequestLimits(options_.limits, validated->input_dims, validated->output_dims);
      !limited.ok()) {
    return limited;
  }
  absl::StatusOr<float*> output =
      PrepareInferResponse(request, *validated, model.name(), model.version(), response);
  if (!output.ok()) return output.status();

  InputTensor input = InputFromRequest(request, *validated);
  auto job = std::make_unique<InferenceJob>();
  const uint64_t id = NextJobId();
  job->id = id;
  job->dims = validated->input_dims;
  job->input = input.data();
  job->output = *output;
  job->deadline = RequestDeadline(call, *validated);
  // `done` moves into the job only when the scheduler takes it: a refused
  // submit leaves it with the caller (the retry or the failure report).
  // The job owns the metrics handle: the version may be unloaded before it
  // completes.
  auto finish = std::make_shared<absl::AnyInvocable<void(absl::Status)>>();
  // The job outlives its done call, which reads the scheduler's timings.
  const InferenceJob* timed = job.get();
  auto link = call.cancellation != nullptr ? std::make_shared<CancelLink>() : nullptr;
  job->done = [this, &request, peer = call.peer, metrics = model.metrics_handle(),
               start = call.start, finish, timed, input = std::move(input),
               cancellation = call.cancellation, link](absl::Status status) {
    if (link != nullptr) {
      uint64_t hook;
      {
        absl::MutexLock lock(&link->mu);
        link->done = true;
        hook = link->hook;
      }
      cancellation->Unregister(hook);
    }
    Record(metrics.get(), status.code(), start);
    if (metrics != nullptr && status.ok()) {
      metrics->RequestOverhead(absl::Now() - start - timed->queue_time - timed->compute_time);
    }
    LogFailure(peer, request, status);  // request lives until done
    (*finish)(status);
  };
  *finish = std::move(done);
  absl::Status submitted = model.scheduler().Submit(std::move(job));
  if (!submitted.ok()) {
    done = std::move(*finish);
    return submitted;
  }
  if (link != nullptr) {
    // After Submit: a cancel that came earlier runs the hook at once, and it
    // still finds the job. The hook keeps the model version only weakly.
    const uint64_t hook =
        call.cancellation->Register([weak = std::weak_ptr<ServedModel>(served), id] {
          if (std::shared_ptr<ServedModel> alive = weak.lock()) alive->scheduler().Cancel(id);
        });
    bool done_already;
    {
      absl::MutexLock lock(&link->mu);
      done_already = link->done;
      if (!done_already) link->hook = hook;
    }
    if (done_already) call.cancellation->Unregister(hook);
  }
  return absl::OkStatus();
}

}  // namespace sepconv
