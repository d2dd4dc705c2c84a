#include "client/client.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/internal/infer_message.h"
#include "client/internal/prepared_request.h"
#include "client/internal/proto_convert.h"
#include "client/rest_client.h"
#include "grpc/grpc.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "health.grpc.pb.h"
#include "proto/status_convert.h"

namespace sepconv::client {
namespace {

using internal::BuildRequest;
using internal::OutputShmBytes;
using internal::ReadOutput;

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";

class GrpcPreparedRequest : public PreparedRequest {
 public:
  GrpcPreparedRequest(grpc::ByteBuffer buffer, int64_t samples,
                      std::optional<int64_t> output_shm_bytes)
      : buffer_(std::move(buffer)), samples_(samples), output_shm_bytes_(output_shm_bytes) {}
  int64_t ByteSize() const override { return static_cast<int64_t>(buffer_.Length()); }
  int64_t samples() const override { return samples_; }
  const grpc::ByteBuffer& buffer() const { return buffer_; }
  // The output's shared-memory placement size, when it was requested there.
  std::optional<int64_t> output_shm_bytes() const { return output_shm_bytes_; }

 private:
  const grpc::ByteBuffer buffer_;
  const int64_t samples_;
  const std::optional<int64_t> output_shm_bytes_;
};

// State of one asynchronous call. Owned by its completion callback (and,
// for a moment, by a closing client cancelling it).
struct AsyncCall {
  grpc::ClientContext context;
  std::shared_ptr<const GrpcPreparedRequest> keep_alive;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  absl::Time start;
  std::function<void(AsyncInferResult)> done;
};

// The asynchronous calls in flight on one client, so that the client's
// destructor can cancel them and wait until every `done` has returned. Held
// by shared_ptr by the client and by every call's callback: whichever lets go
// last frees it, so no thread is ever inside it when it is destroyed.
// Thread-safe.
class CallRegistry {
 public:
  // Registers `call` under a new id; nullopt once Close has begun (the call
  // must then not start).
  std::optional<uint64_t> Add(const std::shared_ptr<AsyncCall>& call) {
    absl::MutexLock lock(&mu_);
    if (closing_) return std::nullopt;
    const uint64_t id = next_id_++;
    calls_.emplace(id, call);
    return id;
  }

  // Called by a call's callback after its `done` returned.
  void Remove(uint64_t id) {
    absl::MutexLock lock(&mu_);
    calls_.erase(id);
  }

  // Refuses new calls, cancels the pending ones and returns once every one of
  // them has been removed. Must not run on a callback of these calls.
  void Close() {
    std::vector<std::shared_ptr<AsyncCall>> pending;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      for (const auto& [id, weak] : calls_) {
        if (std::shared_ptr<AsyncCall> call = weak.lock()) pending.push_back(std::move(call));
      }
    }
    // Outside the lock: a cancellation may run the call's callback on this
    // thread at once (which takes the lock); `pending` keeps each context
    // alive through its TryCancel.
    for (const std::shared_ptr<AsyncCall>& call : pending) call->context.TryCancel();
    pending.clear();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::map<uint64_t, std::weak_ptr<AsyncCall>>* calls) { return calls->empty(); },
        &calls_));
  }

 private:
  absl::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::weak_ptr<AsyncCall>> calls_ ABSL_GUARDED_BY(mu_);
};

constexpr char kModelStreamInferMethod[] = "/inference.GRPCInferenceService/ModelStreamInfer";

// ModelStreamInfer on gRPC's callback API over the generic stub, so prepared
// requests go out without re-encoding. A hold keeps the call open for Send
// until Close half-closes it.
class GrpcInferStream final : public InferStream,
                              public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  GrpcInferStream(grpc::GenericStub* stub, const std::string& token) {
    if (!token.empty()) context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    stub->PrepareBidiStreamingCall(&context_, kModelStreamInferMethod, grpc::StubOptions(), this);
    AddHold();
    StartRead(&read_);
    StartCall();
  }

  ~GrpcInferStream() override {
    if (!finished_.HasBeenNotified()) Close(absl::ZeroDuration()).IgnoreError();
  }

  void Send(std::shared_ptr<const PreparedRequest> request,
            std::function<void(AsyncInferResult)> done) override {
    absl::StatusOr<std::shared_ptr<const GrpcPreparedRequest>> prepared =
        internal::AsPrepared<GrpcPreparedRequest>(std::move(request), "gRPC");
    if (!prepared.ok()) return internal::FailAtOnce(done, prepared.status());
    const grpc::ByteBuffer* write = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!ended_ && !closing_) {
        answers_.push_back({std::move(done), absl::Now(), (*prepared)->output_shm_bytes()});
        to_write_.push_back(*std::move(prepared));
        write = NextWriteLocked();
        done = nullptr;
      }
    }
    if (done) {
      AsyncInferResult result;
      result.status = absl::FailedPreconditionError("the stream has ended");
      done(std::move(result));
      return;
    }
    if (write != nullptr) StartWrite(write);
  }

  absl::Status Close(absl::Duration timeout) override {
    bool writes_done = false;
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return absl::FailedPreconditionError("the stream is already closed");
      closing_ = true;
      writes_done = !writing_ && !writes_done_;
      writes_done_ = writes_done_ || writes_done;
    }
    if (writes_done) StartWritesDone();
    RemoveHold();
    if (!finished_.WaitForNotificationWithTimeout(timeout)) {
      context_.TryCancel();
      finished_.WaitForNotification();
    }
    absl::MutexLock lock(&mu_);
    return status_;
  }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* write = nullptr;
    bool writes_done = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) return;  // the stream broke: OnDone reports it
      write = NextWriteLocked();
      if (write == nullptr && closing_ && !writes_done_) writes_done = writes_done_ = true;
    }
    if (write != nullptr) StartWrite(write);
    if (writes_done) StartWritesDone();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the server ended the stream: OnDone follows
    Pending pending;
    {
      absl::MutexLock lock(&mu_);
      if (answers_.empty()) {
        // An answer nobody asked for: the stream is out of step.
        context_.TryCancel();
        return;
      }
      pending = std::move(answers_.front());
      answers_.pop_front();
    }
    AsyncInferResult result;
    // Shape and size only: the values are never copied out.
    std::string error_message;
    inference::ModelInferResponse header;
    std::optional<int64_t> raw_bytes;
    {
      grpc::ProtoBufferReader reader(&read_);
      result.status =
          internal::ParseStreamResponseHeader(reader, &error_message, &header, &raw_bytes);
    }
    read_.Clear();
    if (result.status.ok() && !error_message.empty()) {
      result.status = FromStreamErrorMessage(error_message);
    } else if (result.status.ok()) {
      result.status = ReadOutput(header, pending.output_shm_bytes, &result.output_shape,
                                 &result.output_bytes, nullptr, raw_bytes);
    }
    result.latency = absl::Now() - pending.start;
    pending.done(std::move(result));
    StartRead(&read_);
  }

  void OnDone(const grpc::Status& status) override {
    std::deque<Pending> unanswered;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      status_ = FromGrpcStatus(status);
      unanswered.swap(answers_);
    }
    for (Pending& pending : unanswered) {
      AsyncInferResult result;
      result.status = status.ok() ? absl::DataLossError("the stream ended before this answer")
                                  : FromGrpcStatus(status);
      result.latency = absl::Now() - pending.start;
      pending.done(std::move(result));
    }
    finished_.Notify();
  }

 private:
  struct Pending {
    std::function<void(AsyncInferResult)> done;
    absl::Time start;
    std::optional<int64_t> output_shm_bytes;  // of its request
  };

  // The next request to write, if no write is in flight.
  const grpc::ByteBuffer* NextWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || to_write_.empty()) return nullptr;
    writing_ = true;
    current_ = to_write_.front();
    to_write_.pop_front();
    return &current_->buffer();
  }

  grpc::ClientContext context_;
  grpc::ByteBuffer read_;  // owned by the read in flight
  absl::Notification finished_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<const GrpcPreparedRequest>> to_write_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const GrpcPreparedRequest> current_;  // owned by the write in flight
  std::deque<Pending> answers_ ABSL_GUARDED_BY(mu_);    // in send order
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

class GrpcClient : public Client {
 public:
  GrpcClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
      : options_(std::move(options)),
        channel_(std::move(channel)),
        inference_(inference::GRPCInferenceService::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)),
        generic_(channel_) {}

  // Cancels the calls still in flight and waits for their `done` (before the
  // channel and stubs they use go).
  ~GrpcClient() override { calls_->Close(); }

  absl::StatusOr<std::string> Health(const std::string& service) override {
    grpc::ClientContext context;
    SetUp(&context, absl::ZeroDuration());
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    absl::Status status = FromGrpcStatus(health_->Check(&context, request, &response));
    if (!status.ok()) return status;
    return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  }

  absl::StatusOr<bool> ServerLive() override {
    return Unary<inference::ServerLiveRequest, inference::ServerLiveResponse>(
        &inference::GRPCInferenceService::Stub::ServerLive, {},
        [](const inference::ServerLiveResponse& r) { return r.live(); });
  }

  absl::StatusOr<bool> ServerReady() override {
    return Unary<inference::ServerReadyRequest, inference::ServerReadyResponse>(
        &inference::GRPCInferenceService::Stub::ServerReady, {},
        [](const inference::ServerReadyResponse& r) { return r.ready(); });
  }

  absl::StatusOr<bool> ModelReady(const std::string& model, const std::string& version) override {
    inference::ModelReadyRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelReadyRequest, inference::ModelReadyResponse>(
        &inference::GRPCInferenceService::Stub::ModelReady, request,
        [](const inference::ModelReadyResponse& r) { return r.ready(); });
  }

  absl::StatusOr<ServerInfo> ServerMetadata() override {
    return Unary<inference::ServerMetadataRequest, inference::ServerMetadataResponse>(
        &inference::GRPCInferenceService::Stub::ServerMetadata, {}, internal::ServerInfoFrom);
  }

  absl::StatusOr<ModelInfo> ModelMetadata(const std::string& model,
                                          const std::string& version) override {
    inference::ModelMetadataRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelMetadataRequest, inference::ModelMetadataResponse>(
        &inference::GRPCInferenceService::Stub::ModelMetadata, request, internal::ModelInfoFrom);
  }

  absl::StatusOr<std::string> ModelConfigText(const std::string& model,
                                              const std::string& version) override {
    inference::ModelConfigRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelConfigRequest, inference::ModelConfigResponse>(
        &inference::GRPCInferenceService::Stub::ModelConfig, request,
        [](const inference::ModelConfigResponse& r) { return internal::ConfigText(r.config()); });
  }

  absl::StatusOr<std::vector<ModelStats>> ModelStatistics(const std::string& model,
                                                          const std::string& version) override {
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>(
        &inference::GRPCInferenceService::Stub::ModelStatistics, request, internal::ModelStatsFrom);
  }

  absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(bool ready_only) override {
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    return Unary<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>(
        &inference::GRPCInferenceService::Stub::RepositoryIndex, request, internal::IndexFrom);
  }

  absl::Status LoadModel(const std::string& model, absl::Duration deadline) override {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(model);
    return Unary<inference::RepositoryModelLoadRequest, inference::RepositoryModelLoadResponse>(
               &inference::GRPCInferenceService::Stub::RepositoryModelLoad, request,
               [](const inference::RepositoryModelLoadResponse&) { return true; }, deadline)
        .status();
  }

  absl::Status UnloadModel(const std::string& model, absl::Duration deadline) override {
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(model);
    return Unary<inference::RepositoryModelUnloadRequest, inference::RepositoryModelUnloadResponse>(
               &inference::GRPCInferenceService::Stub::RepositoryModelUnload, request,
               [](const inference::RepositoryModelUnloadResponse&) { return true; }, deadline)
        .status();
  }

  absl::StatusOr<Tensor> Infer(const std::string& model, const std::string& version,
                               const Tensor& input, const InferOptions& options) override {
    absl::StatusOr<inference::ModelInferRequest> request =
        BuildRequest(model, version, input, options);
    if (!request.ok()) return request.status();
    if (absl::Status s = internal::CheckOutputView(options); !s.ok()) return s;
    const absl::Time deadline = DeadlineOf(options.deadline);
    inference::ModelInferResponse response;
    absl::Status status;
    for (int reissues = Reissues();; --reissues) {
      grpc::ClientContext context;
      SetUp(&context, deadline);
      status = FromGrpcStatus(inference_->ModelInfer(&context, *request, &response));
      if (!Reissue(status, reissues, deadline)) break;
    }
    if (!status.ok()) return status;
    return internal::OutputTensor(response, options);
  }

  absl::Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                          uint64_t offset, uint64_t byte_size) override {
    inference::SystemSharedMemoryRegisterRequest request;
    request.set_name(name);
    request.set_key(key);
    request.set_offset(offset);
    request.set_byte_size(byte_size);
    return Unary<inference::SystemSharedMemoryRegisterRequest,
                 inference::SystemSharedMemoryRegisterResponse>(
               &inference::GRPCInferenceService::Stub::SystemSharedMemoryRegister, request,
               [](const inference::SystemSharedMemoryRegisterResponse&) { return true; })
        .status();
  }

  absl::Status UnregisterSystemSharedMemory(const std::string& name) override {
    inference::SystemSharedMemoryUnregisterRequest request;
    request.set_name(name);
    return Unary<inference::SystemSharedMemoryUnregisterRequest,
                 inference::SystemSharedMemoryUnregisterResponse>(
               &inference::GRPCInferenceService::Stub::SystemSharedMemoryUnregister, request,
               [](const inference::SystemSharedMemoryUnregisterResponse&) { return true; })
        .status();
  }

  absl::StatusOr<std::vector<SharedMemoryStatus>> SystemSharedMemoryStatus(
      const std::string& name) override {
    inference::SystemSharedMemoryStatusRequest request;
    request.set_name(name);
    return Unary<inference::SystemSharedMemoryStatusRequest,
                 inference::SystemSharedMemoryStatusResponse>(
        &inference::GRPCInferenceService::Stub::SystemSharedMemoryStatus, request,
        internal::SharedMemoryStatusFrom);
  }

  absl::StatusOr<std::shared_ptr<const PreparedRequest>> Prepare(
      const std::string& model, const std::string& version, const Tensor& input,
      const InferOptions& options) override {
    absl::StatusOr<inference::ModelInferRequest> request =
        BuildRequest(model, version, input, options);
    if (!request.ok()) return request.status();
    grpc::ByteBuffer buffer;
    bool own = false;
    grpc::Status serialized =
        grpc::SerializationTraits<inference::ModelInferRequest>::Serialize(*request, &buffer, &own);
    if (!serialized.ok()) return FromGrpcStatus(serialized);
    const int64_t samples = input.shape.empty() ? 1 : input.shape[0];
    return std::make_shared<GrpcPreparedRequest>(std::move(buffer), samples,
                                                 OutputShmBytes(options));
  }

  absl::StatusOr<std::unique_ptr<InferStream>> OpenStream() override {
    return std::make_unique<GrpcInferStream>(&generic_, options_.token);
  }

  void InferAsync(std::shared_ptr<const PreparedRequest> request, absl::Duration deadline,
                  std::function<void(AsyncInferResult)> done) override {
    absl::StatusOr<std::shared_ptr<const GrpcPreparedRequest>> prepared =
        internal::AsPrepared<GrpcPreparedRequest>(std::move(request), "gRPC");
    if (!prepared.ok()) return internal::FailAtOnce(done, prepared.status());
    StartAsync(*std::move(prepared), DeadlineOf(deadline), absl::Now(), Reissues(),
               std::move(done));
  }

 private:
  // One attempt of an InferAsync call started at `start`; on a failure that
  // Reissue accepts, its callback starts the next attempt, which inherits the
  // deadline, the start (latency covers every attempt) and `done`.
  void StartAsync(std::shared_ptr<const GrpcPreparedRequest> request, absl::Time deadline,
                  absl::Time start, int reissues, std::function<void(AsyncInferResult)> done) {
    auto call = std::make_shared<AsyncCall>();
    SetUp(&call->context, deadline);
    call->request = request->buffer();
    call->keep_alive = std::move(request);
    call->done = std::move(done);
    call->start = start;
    const std::optional<uint64_t> id = calls_->Add(call);
    if (!id.has_value()) {
      AsyncInferResult result;
      result.latency = absl::Now() - start;
      result.status = absl::CancelledError("the client is being destroyed");
      call->done(std::move(result));
      return;
    }
    AsyncCall* raw = call.get();
    // The callback owns the call and a share of the registry, and lets go of
    // both before it returns: the call's state is freed (unless a closing
    // client holds it for a moment), then the call leaves the registry, which
    // is what the client's destructor waits for. A reissue registers its call
    // before this one leaves, so the destructor (which waits for an empty
    // registry) cannot return in between: `this` outlives the reissue.
    generic_.UnaryCall(
        &raw->context, kModelInferMethod, grpc::StubOptions(), &raw->request, &raw->response,
        [this, call = std::move(call), registry = calls_, id = *id, deadline,
         reissues](grpc::Status status) mutable {
          std::shared_ptr<AsyncCall> self = std::move(call);
          std::shared_ptr<CallRegistry> calls = std::move(registry);
          AsyncInferResult result;
          result.status = FromGrpcStatus(status);
          if (Reissue(result.status, reissues, deadline)) {
            StartAsync(std::move(self->keep_alive), deadline, self->start, reissues - 1,
                       std::move(self->done));
            self.reset();
            calls->Remove(id);
            return;
          }
          result.latency = absl::Now() - self->start;
          if (result.status.ok()) {
            // Shape and size only: the values are never copied out.
            inference::ModelInferResponse header;
            std::optional<int64_t> raw_bytes;
            grpc::ProtoBufferReader reader(&self->response);
            result.status = internal::ParseInferResponseHeader(reader, &header, &raw_bytes);
            if (result.status.ok()) {
              result.status =
                  ReadOutput(header, self->keep_alive->output_shm_bytes(), &result.output_shape,
                             &result.output_bytes, nullptr, raw_bytes);
            }
          }
          self->done(std::move(result));
          self.reset();
          calls->Remove(id);
        });
  }

  // Sends of an inference call after its first that may follow a failure
  // gRPC's own retry could not take back (ClientOptions::max_attempts).
  int Reissues() const { return options_.max_attempts > 1 ? 1 : 0; }

  // Whether a call that ended with `status` is sent again: UNAVAILABLE (a
  // reset connection), with a reissue left and time before its deadline.
  static bool Reissue(const absl::Status& status, int reissues, absl::Time deadline) {
    return status.code() == absl::StatusCode::kUnavailable && reissues > 0 &&
           absl::Now() < deadline;
  }

  absl::Time DeadlineOf(absl::Duration deadline) const {
    return absl::Now() + (deadline > absl::ZeroDuration() ? deadline : options_.default_deadline);
  }

  void SetUp(grpc::ClientContext* context, absl::Duration deadline) const {
    SetUp(context, DeadlineOf(deadline));
  }
  void SetUp(grpc::ClientContext* context, absl::Time deadline) const {
    context->set_deadline(absl::ToChronoTime(deadline));
    if (!options_.token.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
    }
  }

  template <typename Request, typename Response, typename Method, typename Convert>
  auto Unary(Method method, const Request& request, Convert convert,
             absl::Duration deadline = absl::ZeroDuration())
      -> absl::StatusOr<decltype(convert(std::declval<Response>()))> {
    grpc::ClientContext context;
    SetUp(&context, deadline);
    Response response;
    absl::Status status = FromGrpcStatus(((*inference_).*method)(&context, request, &response));
    if (!status.ok()) return status;
    return convert(response);
  }

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  grpc::GenericStub generic_;
  const std::shared_ptr<CallRegistry> calls_ = std::make_shared<CallRegistry>();
};

// The service config: `max_attempts` tries of every method of both services
// (all idempotent) on UNAVAILABLE (replica down or draining) and CANCELLED.
// The server cancels only calls that race its shutdown (this client cancels
// none, and gRPC never retries a call its caller cancelled); in a rolling
// restart 5 of 31873 calls ended so without this. Client-side health checking
// would also steer calls off a draining replica, but its Watch stream holds
// every connection open past the server's max connection age until the grace
// ends, and the forced close then failed calls (UNAVAILABLE, connection
// reset). The load-balancing policy is set apart, as a channel argument, so
// that a resolver's own service config cannot undo it.
std::string ServiceConfigJson(int max_attempts) {
  if (max_attempts <= 1) return "{}";
  return absl::StrCat(R"({"methodConfig": [{
    "name": [{"service": "inference.GRPCInferenceService"}, {"service": "grpc.health.v1.Health"}],
    "retryPolicy": {"maxAttempts": )",
                      max_attempts, R"(, "initialBackoff": "0.05s", "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}}]})");
}

}  // namespace

GrpcRuntime::GrpcRuntime() { grpc_init(); }

GrpcRuntime::~GrpcRuntime() {
  grpc_shutdown_blocking();
  // gRPC's core channel outlives the Client's: it goes when its last call or
  // connection attempt (a TLS handshake) ends, on a gRPC thread, and holds
  // gRPC initialised until then. Wait for that (bounded) ...
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (grpc_is_initialized() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  // ... and, as its final shutdown then starts on a detached gRPC thread,
  // take and release gRPC once more from here: grpc_init waits while that
  // shutdown holds gRPC's lock, and this last shutdown runs here, blocking.
  grpc_init();
  grpc_shutdown_blocking();
}

absl::StatusOr<LbPolicy> ParseLbPolicy(const std::string& name) {
  if (name == "round_robin") return LbPolicy::kRoundRobin;
  if (name == "pick_first") return LbPolicy::kPickFirst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown load-balancing policy '", name, "' (round_robin or pick_first)"));
}

std::string LbPolicyName(LbPolicy policy) {
  return policy == LbPolicy::kPickFirst ? "pick_first" : "round_robin";
}

absl::StatusOr<Protocol> ParseProtocol(const std::string& name) {
  if (name == "grpc") return Protocol::kGrpc;
  if (name == "http") return Protocol::kHttp;
  return absl::InvalidArgumentError(absl::StrCat("unknown protocol '", name, "' (grpc or http)"));
}

std::string ProtocolName(Protocol protocol) {
  return protocol == Protocol::kHttp ? "http" : "grpc";
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const std::string& target,
                                                       ClientOptions options) {
  if (target.empty()) return absl::InvalidArgumentError("empty server address");
  if (options.client_cert_pem.empty() != options.client_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs both a client certificate and its private key");
  }
  if (!options.use_tls && (!options.root_certs_pem.empty() || !options.client_cert_pem.empty())) {
    return absl::InvalidArgumentError("TLS certificates given but TLS is off");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be at least 1, got ", options.max_attempts));
  }
  if (options.protocol == Protocol::kHttp) return CreateRestClient(target, options);
  if (options.http_json) {
    return absl::InvalidArgumentError("http_json (JSON tensors) is for the REST protocol");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.root_certs_pem;
    ssl.pem_cert_chain = options.client_cert_pem;
    ssl.pem_private_key = options.client_key_pem;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  const int max_bytes = static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  // Each Client gets its own connection, so that N clients are N connections.
  // With round_robin, that is one connection per address per Client.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetLoadBalancingPolicyName(LbPolicyName(options.lb_policy));
  args.SetServiceConfigJSON(ServiceConfigJson(options.max_attempts));
  args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE,
              static_cast<int>(std::clamp<int64_t>(options.retry_buffer_bytes, 0, INT32_MAX)));
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, credentials, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create a channel to '", target, "'"));
  }
  return std::unique_ptr<Client>(new GrpcClient(std::move(channel), std::move(options)));
}

}  // namespace sepconv::client
