#include "server/grpc/inference_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/grpc/proto_request.h"
#include "server/grpc/status_util.h"

namespace sepconv {
namespace {

// ModelInfer's reactor: owns the parsed request (views into gRPC's message)
// and turns the client's cancel into the request's Cancellation event.
// Frees itself when the call is done.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  const std::shared_ptr<Cancellation>& cancellation() const { return cancellation_; }
  void OnCancel() override { cancellation_->Cancel(); }
  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<Cancellation> cancellation_ = std::make_shared<Cancellation>();
};

void CopyTensorMetadata(const TensorMetadataInfo& from,
                        inference::ModelMetadataResponse::TensorMetadata* to) {
  to->set_name(from.name);
  to->set_datatype(from.datatype);
  for (int64_t dim : from.shape) to->add_shape(dim);
}

// Idle request messages and output buffers ModelInfer keeps at most, each,
// and the tensor memory they may hold, each (what is given back beyond it is
// freed after its call).
constexpr int kIdleBuffers = 4;
constexpr size_t kIdleBytes = size_t{64} << 20;
// Buffers WarmBuffers maps ahead: a closed loop of one client holds two (the
// next request may arrive before gRPC gives back the last answer's buffer).
constexpr int kWarmBuffers = 2;

// One unary ModelInfer from its bytes to its answer: the pooled request
// message (the core's views point into it) and the answer, its header and
// the output buffer the engine writes into.
struct UnaryInfer {
  std::unique_ptr<inference::ModelInferRequest> request;
  inference::ModelInferResponse header;
  OutputBuffer output;
  size_t output_bytes = 0;
};

// The core's allocator for `unary`: the header, and a pooled buffer for a
// raw output (a retry on a replaced version asks again: the answer is
// rewritten, the buffer kept if large enough). Typed outputs go into the
// header message (its fp32_contents), shared-memory ones nowhere.
OutputAllocator UnaryAllocator(std::shared_ptr<UnaryInfer> unary,
                               std::shared_ptr<InferBufferPool> pool) {
  return [unary = std::move(unary),
          pool = std::move(pool)](const InferResult& result) -> absl::StatusOr<float*> {
    const std::string& id = unary->request->id();
    if (!result.raw || result.output_in_shared_memory) {
      unary->output_bytes = 0;
      pool->GiveOutput(std::move(unary->output));  // a first attempt's, if any
      return WriteInferResponse(result, id, &unary->header);
    }
    unary->output_bytes =
        static_cast<size_t>(WriteResponseHeader(result, id, &unary->header)) * sizeof(float);
    if (unary->output.capacity < unary->output_bytes) {
      pool->GiveOutput(std::move(unary->output));
      unary->output = pool->TakeOutput(unary->output_bytes);
    }
    return reinterpret_cast<float*>(unary->output.data.get());
  };
}

}  // namespace

InferenceService::InferenceService(std::shared_ptr<const ModelRegistry> registry,
                                   std::shared_ptr<InferenceCore> core,
                                   InferenceServiceOptions options)
    : registry_(std::move(registry)),
      core_(std::move(core)),
      options_(std::move(options)),
      buffers_(std::make_shared<InferBufferPool>(kIdleBuffers, kIdleBytes)) {}

void InferenceService::WarmBuffers() {
  const TensorBytes largest = core_->LargestWarmupTensors();
  if (largest.input == 0 || kWarmBuffers * std::max(largest.input, largest.output) > kIdleBytes) {
    return;  // nothing declared, or more than the pool keeps
  }
  buffers_->Warm(largest.input, largest.output, kWarmBuffers);
}

void InferenceService::StopStreams() { open_streams_.StopAll(); }

absl::Status InferenceService::Authenticate(const grpc::CallbackServerContext& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return core_->Authenticate("");
  return core_->Authenticate(absl::string_view(it->second.data(), it->second.size()));
}

InferCall InferenceService::CallFrom(const grpc::CallbackServerContext& context) const {
  InferCall call;
  call.start = absl::Now();
  call.auth = Authenticate(context);
  if (context.deadline() != std::chrono::system_clock::time_point::max()) {
    call.deadline = absl::FromChrono(context.deadline());
  }
  call.peer = context.peer();
  return call;
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
  response->set_ready(core_->Ready());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  response->set_ready(core_->ModelReady(request->name(), request->version()));
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  const ServerMetadataInfo info = core_->ServerMetadata();
  response->set_name(info.name);
  response->set_version(info.version);
  // ModelStreamInfer has no name of its own in Triton's list.
  for (const std::string& extension : info.extensions) response->add_extensions(extension);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  absl::StatusOr<ModelMetadataInfo> info =
      core_->ModelMetadata(request->name(), request->version());
  if (!info.ok()) return FinishUnary(context, info.status());
  response->set_name(info->name);
  for (const std::string& version : info->versions) response->add_versions(version);
  response->set_platform(info->platform);
  for (const TensorMetadataInfo& input : info->inputs) {
    CopyTensorMetadata(input, response->add_inputs());
  }
  for (const TensorMetadataInfo& output : info->outputs) {
    CopyTensorMetadata(output, response->add_outputs());
  }
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  InferCall call = CallFrom(*context);
  // Context, request and response live until OnDone, which frees the reactor.
  auto* reactor = new InferReactor();
  call.cancellation = reactor->cancellation();
  auto unary = std::make_shared<UnaryInfer>();
  unary->request = buffers_->TakeRequest();
  if (absl::Status parsed = ParseModelInferBytes(*request, unary->request.get()); !parsed.ok()) {
    buffers_->GiveRequest(std::move(unary->request));
    reactor->Finish(ToGrpcStatus(call.auth.ok() ? parsed : call.auth));
    return reactor;
  }
  const inference::ModelInferRequest& message = *unary->request;
  Infer(message, UnaryAllocator(unary, buffers_), std::move(call),
        [unary, response, reactor, pool = buffers_](absl::Status status) {
          if (status.ok()) {
            *response = EncodeInferResponse(unary->header, std::move(unary->output),
                                            unary->output_bytes, pool);
          }
          pool->GiveOutput(std::move(unary->output));  // not sent: kept for the next call
          pool->GiveRequest(std::move(unary->request));
          reactor->Finish(ToGrpcStatus(status));
        });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return StartStreamInfer(this, context, options_.stream_max_in_flight, &open_streams_);
}

void InferenceService::Infer(const inference::ModelInferRequest& request, OutputAllocator allocate,
                             InferCall call, absl::AnyInvocable<void(absl::Status)> done) {
  absl::StatusOr<InferRequest> parsed = ParseModelInferRequest(request);
  if (!call.auth.ok() || !parsed.ok()) {  // auth first: tell strangers nothing more
    InferRequest names;
    names.model_name = request.model_name();
    names.model_version = request.model_version();
    absl::Status status = call.auth.ok() ? parsed.status() : call.auth;
    core_->Refuse(names, call, std::move(status), std::move(done));
    return;
  }
  // The parsed views must live until done: they move along with it.
  auto owned = std::make_unique<InferRequest>(*std::move(parsed));
  const InferRequest& views = *owned;
  core_->Infer(views, std::move(call), std::move(allocate),
               [owned = std::move(owned), done = std::move(done)](absl::Status status) mutable {
                 done(std::move(status));
               });
}

}  // namespace sepconv
