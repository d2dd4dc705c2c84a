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
#include "google/protobuf/text_format.h"
#include "grpc/grpc.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "health.grpc.pb.h"
#include "proto/status_convert.h"

namespace sepconv::client {
namespace {

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";

// Names `placement` in a tensor's parameters, as Triton's extension does.
void SetPlacement(const SharedMemoryPlacement& placement,
                  google::protobuf::Map<std::string, inference::InferParameter>* parameters) {
  (*parameters)["shared_memory_region"].set_string_param(placement.region);
  (*parameters)["shared_memory_byte_size"].set_int64_param(placement.byte_size);
  if (placement.offset != 0) {
    (*parameters)["shared_memory_offset"].set_int64_param(placement.offset);
  }
}

absl::Status CheckPlacement(const char* what, const SharedMemoryPlacement& placement) {
  if (placement.region.empty() || placement.offset < 0 || placement.byte_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " in shared memory needs a region name, an offset >= 0 and a byte size >= 1"));
  }
  return absl::OkStatus();
}

// Checks `options`' shared-memory placements against `input` and each other.
absl::Status CheckSharedMemory(const Tensor& input, int64_t input_bytes,
                               const InferOptions& options) {
  const bool shm = options.input_shared_memory || options.output_shared_memory;
  if (shm && options.typed) {
    return absl::InvalidArgumentError("typed contents and shared memory exclude each other");
  }
  if (const auto& in = options.input_shared_memory) {
    if (absl::Status s = CheckPlacement("an input", *in); !s.ok()) return s;
    if (!input.data.empty()) {
      return absl::InvalidArgumentError(
          "an input in shared memory takes its values from the region: its data must be empty");
    }
    if (in->byte_size != input_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("input of shape ", ShapeString(input.shape), " has ", input_bytes,
                       " bytes, but its shared-memory placement holds ", in->byte_size));
    }
  }
  if (const auto& out = options.output_shared_memory) {
    if (absl::Status s = CheckPlacement("an output", *out); !s.ok()) return s;
    if (out->offset % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an output's shared-memory offset must be a multiple of 4, got ", out->offset));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<inference::ModelInferRequest> BuildRequest(const std::string& model,
                                                          const std::string& version,
                                                          const Tensor& input,
                                                          const InferOptions& options) {
  absl::StatusOr<int64_t> count = ElementCount(input.shape);
  if (!count.ok()) return count.status();
  if (!options.input_shared_memory && static_cast<uint64_t>(*count) != input.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("input of shape ", ShapeString(input.shape),
                                                   " has ", input.data.size(), " values, expected ",
                                                   *count));
  }
  const int64_t input_bytes = *count * static_cast<int64_t>(sizeof(float));
  if (absl::Status s = CheckSharedMemory(input, input_bytes, options); !s.ok()) return s;
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_model_version(version);
  request.set_id(options.request_id);
  auto* tensor = request.add_inputs();
  tensor->set_name("input");
  tensor->set_datatype("FP32");
  for (int64_t d : input.shape) tensor->add_shape(d);
  if (options.input_shared_memory) {
    SetPlacement(*options.input_shared_memory, tensor->mutable_parameters());
  } else if (options.typed) {
    tensor->mutable_contents()->mutable_fp32_contents()->Add(input.data.begin(), input.data.end());
  } else {
    request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(input.data.data()),
                                             input.data.size() * sizeof(float));
  }
  if (options.output_shared_memory) {
    auto* output = request.add_outputs();
    output->set_name(options.output_name.empty() ? "output" : options.output_name);
    SetPlacement(*options.output_shared_memory, output->mutable_parameters());
  }
  return request;
}

// Checks the first output of `response` against its own shape: its values
// raw (in the first raw_output_contents) or typed; or, for an output
// requested in shared memory (`shm_bytes`: the placement's size), no values
// and at most `shm_bytes` bytes. When `values` is given, copies the values
// out of the response (not for shared memory: they are in the region).
absl::Status ReadOutput(const inference::ModelInferResponse& response,
                        std::optional<int64_t> shm_bytes, std::vector<int64_t>* shape,
                        int64_t* bytes, std::vector<float>* values) {
  if (response.outputs_size() == 0) return absl::DataLossError("response has no outputs");
  const auto& output = response.outputs(0);
  if (output.datatype() != "FP32") {
    return absl::DataLossError(absl::StrCat("output '", output.name(), "' has datatype '",
                                            output.datatype(), "', expected FP32"));
  }
  shape->assign(output.shape().begin(), output.shape().end());
  absl::StatusOr<int64_t> count = ElementCount(*shape);
  if (!count.ok()) return absl::DataLossError(count.status().message());
  const int64_t want = *count * static_cast<int64_t>(sizeof(float));
  const auto& typed = output.contents().fp32_contents();
  const bool has_values = response.raw_output_contents_size() > 0 || !typed.empty();
  if (shm_bytes.has_value()) {
    if (has_values) {
      return absl::DataLossError(absl::StrCat(
          "output '", output.name(),
          "' was requested in shared memory but came back in the response (does the server "
          "support system shared memory?)"));
    }
    if (want > *shm_bytes) {
      return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                              want, " bytes, more than its shared-memory ",
                                              "placement's ", *shm_bytes));
    }
    *bytes = want;
    return absl::OkStatus();
  }
  if (!has_values && want > 0) {
    return absl::DataLossError(absl::StrCat(
        "output '", output.name(),
        "' carries no values (only an output requested in shared memory may leave them out)"));
  }
  if (response.raw_output_contents_size() > 0) {
    const std::string& raw = response.raw_output_contents(0);
    const auto raw_size = static_cast<int64_t>(raw.size());
    if (raw_size != want) {
      return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                              raw_size, " raw bytes, expected ", want));
    }
    *bytes = raw_size;
    if (values != nullptr) {
      values->resize(static_cast<size_t>(*count));
      if (want > 0) std::memcpy(values->data(), raw.data(), static_cast<size_t>(want));
    }
    return absl::OkStatus();
  }
  if (typed.size() != *count) {
    return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                            typed.size(), " fp32_contents, expected ", *count));
  }
  *bytes = want;
  if (values != nullptr) values->assign(typed.begin(), typed.end());
  return absl::OkStatus();
}

// The size of the output placement of `options`, if any.
std::optional<int64_t> OutputShmBytes(const InferOptions& options) {
  if (!options.output_shared_memory) return std::nullopt;
  return options.output_shared_memory->byte_size;
}

// Parses a response as gRPC's generated stubs do (no size limit of its own:
// the channel's max receive size has bounded it already).
template <typename Message>
absl::Status ParseResponse(grpc::ByteBuffer* buffer, Message* message) {
  if (!grpc::SerializationTraits<Message>::Deserialize(buffer, message).ok()) {
    return absl::DataLossError(absl::StrCat("unparsable ", Message::descriptor()->name()));
  }
  return absl::OkStatus();
}

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
  std::shared_ptr<const PreparedRequest> keep_alive;
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
    const grpc::ByteBuffer* write = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (!ended_ && !closing_) {
        answers_.push_back({std::move(done), absl::Now(),
                            static_cast<const GrpcPreparedRequest&>(*request).output_shm_bytes()});
        to_write_.push_back(std::move(request));
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
    inference::ModelStreamInferResponse answer;
    result.status = ParseResponse(&read_, &answer);
    if (result.status.ok() && !answer.error_message().empty()) {
      result.status = FromStreamErrorMessage(answer.error_message());
    } else if (result.status.ok()) {
      const inference::ModelInferResponse& response = answer.infer_response();
      result.status = ReadOutput(response, pending.output_shm_bytes, &result.output_shape,
                                 &result.output_bytes, nullptr);
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
    return &static_cast<const GrpcPreparedRequest&>(*current_).buffer();
  }

  grpc::ClientContext context_;
  grpc::ByteBuffer read_;  // owned by the read in flight
  absl::Notification finished_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<const PreparedRequest>> to_write_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const PreparedRequest> current_;    // owned by the write in flight
  std::deque<Pending> answers_ ABSL_GUARDED_BY(mu_);  // in send order
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
        &inference::GRPCInferenceService::Stub::ServerMetadata, {},
        [](const inference::ServerMetadataResponse& r) {
          return ServerInfo{r.name(), r.version(), {r.extensions().begin(), r.extensions().end()}};
        });
  }

  absl::StatusOr<ModelInfo> ModelMetadata(const std::string& model,
                                          const std::string& version) override {
    inference::ModelMetadataRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelMetadataRequest, inference::ModelMetadataResponse>(
        &inference::GRPCInferenceService::Stub::ModelMetadata, request,
        [](const inference::ModelMetadataResponse& r) {
          auto convert = [](const auto& tensors) {
            std::vector<TensorInfo> out;
            for (const auto& t : tensors) {
              out.push_back({t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}});
            }
            return out;
          };
          return ModelInfo{r.name(),
                           {r.versions().begin(), r.versions().end()},
                           r.platform(),
                           convert(r.inputs()),
                           convert(r.outputs())};
        });
  }

  absl::StatusOr<std::string> ModelConfigText(const std::string& model,
                                              const std::string& version) override {
    inference::ModelConfigRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelConfigRequest, inference::ModelConfigResponse>(
        &inference::GRPCInferenceService::Stub::ModelConfig, request,
        [](const inference::ModelConfigResponse& r) {
          std::string text;
          google::protobuf::TextFormat::PrintToString(r.config(), &text);
          return text;
        });
  }

  absl::StatusOr<std::vector<ModelStats>> ModelStatistics(const std::string& model,
                                                          const std::string& version) override {
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    request.set_version(version);
    return Unary<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>(
        &inference::GRPCInferenceService::Stub::ModelStatistics, request,
        [](const inference::ModelStatisticsResponse& r) {
          auto duration = [](const inference::StatisticDuration& d) {
            return DurationStat{d.count(), d.ns()};
          };
          std::vector<ModelStats> out;
          for (const inference::ModelStatistics& s : r.model_stats()) {
            const inference::InferStatistics& i = s.inference_stats();
            out.push_back({s.name(), s.version(), s.last_inference(), s.inference_count(),
                           s.execution_count(), duration(i.success()), duration(i.fail()),
                           duration(i.queue()), duration(i.compute_input()),
                           duration(i.compute_infer()), duration(i.compute_output())});
          }
          return out;
        });
  }

  absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(bool ready_only) override {
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    return Unary<inference::RepositoryIndexRequest, inference::RepositoryIndexResponse>(
        &inference::GRPCInferenceService::Stub::RepositoryIndex, request,
        [](const inference::RepositoryIndexResponse& r) {
          std::vector<IndexEntry> out;
          for (const auto& m : r.models()) {
            out.push_back({m.name(), m.version(), m.state(), m.reason()});
          }
          return out;
        });
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
    if (options.output_shared_memory && static_cast<int64_t>(options.output_view.size()) <
                                            options.output_shared_memory->byte_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an output in shared memory needs InferOptions::output_view of its ",
          options.output_shared_memory->byte_size, " bytes, got ", options.output_view.size()));
    }
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
    Tensor output;
    int64_t bytes = 0;
    const std::optional<int64_t> shm_bytes = OutputShmBytes(options);
    status =
        ReadOutput(response, shm_bytes, &output.shape, &bytes, shm_bytes ? nullptr : &output.data);
    if (!status.ok()) return status;
    if (shm_bytes) {
      output.data.resize(static_cast<size_t>(bytes) / sizeof(float));
      if (bytes > 0) std::memcpy(output.data.data(), options.output_view.data(), bytes);
    }
    return output;
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
        [](const inference::SystemSharedMemoryStatusResponse& r) {
          std::vector<SharedMemoryStatus> out;
          for (const auto& [region, status] : r.regions()) {
            out.push_back({status.name().empty() ? region : status.name(), status.key(),
                           status.offset(), status.byte_size()});
          }
          std::sort(out.begin(), out.end(),
                    [](const SharedMemoryStatus& a, const SharedMemoryStatus& b) {
                      return a.name < b.name;
                    });
          return out;
        });
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
    StartAsync(std::move(request), DeadlineOf(deadline), absl::Now(), Reissues(), std::move(done));
  }

 private:
  // One attempt of an InferAsync call started at `start`; on a failure that
  // Reissue accepts, its callback starts the next attempt, which inherits the
  // deadline, the start (latency covers every attempt) and `done`.
  void StartAsync(std::shared_ptr<const PreparedRequest> request, absl::Time deadline,
                  absl::Time start, int reissues, std::function<void(AsyncInferResult)> done) {
    auto call = std::make_shared<AsyncCall>();
    SetUp(&call->context, deadline);
    call->request = static_cast<const GrpcPreparedRequest&>(*request).buffer();
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
            inference::ModelInferResponse response;
            result.status = ParseResponse(&self->response, &response);
            if (result.status.ok()) {
              const auto& prepared = static_cast<const GrpcPreparedRequest&>(*self->keep_alive);
              result.status = ReadOutput(response, prepared.output_shm_bytes(),
                                         &result.output_shape, &result.output_bytes, nullptr);
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
