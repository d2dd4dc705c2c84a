#include "client/rest_client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/internal/http_connection.h"
#include "client/internal/http_workers.h"
#include "client/internal/infer_message.h"
#include "client/internal/prepared_request.h"
#include "client/internal/proto_convert.h"
#include "client/internal/rest_codec.h"

namespace sepconv::client {
namespace {

using internal::HttpConnector;
using internal::HttpWorkers;
using internal::RestBody;

using internal::HttpAnswer;
using internal::HttpCall;
using internal::HttpConnection;

HttpCall Get(std::string path) { return HttpCall{false, std::move(path), nullptr, "", {}}; }

HttpCall Post(std::string path, const std::string* body = nullptr) {
  return HttpCall{true, std::move(path), body, internal::kJsonType, {}};
}

class RestPreparedRequest : public PreparedRequest {
 public:
  RestPreparedRequest(std::string path, RestBody body, int64_t samples,
                      std::optional<int64_t> output_shm_bytes)
      : path_(std::move(path)),
        body_(std::move(body)),
        samples_(samples),
        output_shm_bytes_(output_shm_bytes) {}
  int64_t ByteSize() const override { return static_cast<int64_t>(body_.content.size()); }
  int64_t samples() const override { return samples_; }

  HttpCall Call() const {
    HttpCall call = Post(path_, &body_.content);
    if (body_.header_length) {
      call.content_type = internal::kBinaryType;
      call.headers.emplace_back(internal::kHeaderLengthHeader,
                                std::to_string(*body_.header_length));
    }
    return call;
  }
  std::optional<int64_t> output_shm_bytes() const { return output_shm_bytes_; }

 private:
  const std::string path_;
  const RestBody body_;
  const int64_t samples_;
  const std::optional<int64_t> output_shm_bytes_;
};

// A 200 answer's body, else the server's error.
absl::StatusOr<std::string> BodyOf(absl::StatusOr<HttpAnswer> response) {
  if (!response.ok()) return response.status();
  if (response->status != 200) return internal::StatusFromHttp(response->status, response->body);
  return std::move(response->body);
}

// A readiness answer: 200 ready, 400 not (KServe v2 REST).
absl::StatusOr<bool> ReadyOf(absl::StatusOr<HttpAnswer> response) {
  if (!response.ok()) return response.status();
  if (response->status == 200) return true;
  if (response->status == 400) return false;
  return internal::StatusFromHttp(response->status, response->body);
}

// A 200 JSON answer parsed into `Message`.
template <typename Message>
absl::StatusOr<Message> MessageOf(absl::StatusOr<HttpAnswer> response) {
  absl::StatusOr<std::string> body = BodyOf(std::move(response));
  if (!body.ok()) return body.status();
  Message message;
  if (absl::Status s = internal::ParseJsonMessage(*body, &message); !s.ok()) return s;
  return message;
}

// An infer answer as the gRPC message (without its binary values, whose
// size goes to `skipped_raw_bytes`, when that is given).
absl::StatusOr<inference::ModelInferResponse> InferResponseOf(
    absl::StatusOr<HttpAnswer> response, std::optional<int64_t>* skipped_raw_bytes = nullptr) {
  if (!response.ok()) return response.status();
  if (response->status != 200) return internal::StatusFromHttp(response->status, response->body);
  std::optional<size_t> header_length;
  if (response->HasHeader(internal::kHeaderLengthHeader)) {
    const std::string value = response->Header(internal::kHeaderLengthHeader);
    size_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
      return absl::DataLossError(
          absl::StrCat(internal::kHeaderLengthHeader, " '", value, "' is not a byte count"));
    }
    header_length = length;
  }
  return internal::DecodeInferResponse(std::move(response->body), header_length, skipped_raw_bytes);
}

class RestClient final : public Client {
 public:
  RestClient(std::unique_ptr<HttpConnector> connector, ClientOptions options)
      : options_(std::move(options)),
        connector_(std::move(connector)),
        workers_([connector = connector_.get()] { return connector->Connect(); }) {}

  // Cancels the asynchronous calls and waits for their `done`, before the
  // connector and options they use go.
  ~RestClient() override { workers_.Close(); }

  // REST has no grpc.health: "" is the server's readiness, a model name the
  // model's (NOT_FOUND for a model the server does not know).
  absl::StatusOr<std::string> Health(const std::string& service) override {
    const std::string path =
        service.empty() ? "/v2/health/ready" : internal::ModelPath(service, "") + "/ready";
    absl::StatusOr<bool> ready = ReadyOf(Call(Get(path), absl::ZeroDuration()));
    if (!ready.ok()) return ready.status();
    if (*ready) return std::string("SERVING");
    if (!service.empty()) {
      absl::StatusOr<ModelInfo> model = ModelMetadata(service, "");
      if (model.status().code() == absl::StatusCode::kNotFound) return model.status();
    }
    return std::string("NOT_SERVING");
  }

  absl::StatusOr<bool> ServerLive() override {
    return ReadyOf(Call(Get("/v2/health/live"), absl::ZeroDuration()));
  }

  absl::StatusOr<bool> ServerReady() override {
    return ReadyOf(Call(Get("/v2/health/ready"), absl::ZeroDuration()));
  }

  absl::StatusOr<bool> ModelReady(const std::string& model, const std::string& version) override {
    return ReadyOf(Call(Get(internal::ModelPath(model, version) + "/ready"), absl::ZeroDuration()));
  }

  absl::StatusOr<ServerInfo> ServerMetadata() override {
    absl::StatusOr<inference::ServerMetadataResponse> r =
        MessageOf<inference::ServerMetadataResponse>(Call(Get("/v2"), absl::ZeroDuration()));
    if (!r.ok()) return r.status();
    return internal::ServerInfoFrom(*r);
  }

  absl::StatusOr<ModelInfo> ModelMetadata(const std::string& model,
                                          const std::string& version) override {
    absl::StatusOr<inference::ModelMetadataResponse> r =
        MessageOf<inference::ModelMetadataResponse>(
            Call(Get(internal::ModelPath(model, version)), absl::ZeroDuration()));
    if (!r.ok()) return r.status();
    return internal::ModelInfoFrom(*r);
  }

  absl::StatusOr<std::string> ModelConfigText(const std::string& model,
                                              const std::string& version) override {
    absl::StatusOr<sepconv::ModelConfig> config = MessageOf<sepconv::ModelConfig>(
        Call(Get(internal::ModelPath(model, version) + "/config"), absl::ZeroDuration()));
    if (!config.ok()) return config.status();
    return internal::ConfigText(*config);
  }

  absl::StatusOr<std::vector<ModelStats>> ModelStatistics(const std::string& model,
                                                          const std::string& version) override {
    const std::string path =
        model.empty() ? "/v2/models/stats" : internal::ModelPath(model, version) + "/stats";
    absl::StatusOr<inference::ModelStatisticsResponse> r =
        MessageOf<inference::ModelStatisticsResponse>(Call(Get(path), absl::ZeroDuration()));
    if (!r.ok()) return r.status();
    return internal::ModelStatsFrom(*r);
  }

  absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(bool ready_only) override {
    const std::string request = ready_only ? R"({"ready":true})" : "{}";
    absl::StatusOr<std::string> body =
        BodyOf(Call(Post("/v2/repository/index", &request), absl::ZeroDuration()));
    if (!body.ok()) return body.status();
    // The answer is the array of RepositoryIndexResponse.models.
    inference::RepositoryIndexResponse index;
    absl::Status parsed =
        internal::ParseJsonMessage(absl::StrCat(R"({"models":)", *body, "}"), &index);
    if (!parsed.ok()) return parsed;
    return internal::IndexFrom(index);
  }

  absl::Status LoadModel(const std::string& model, absl::Duration deadline) override {
    return BodyOf(Call(Post(absl::StrCat("/v2/repository/models/", model, "/load")), deadline))
        .status();
  }

  absl::Status UnloadModel(const std::string& model, absl::Duration deadline) override {
    return BodyOf(Call(Post(absl::StrCat("/v2/repository/models/", model, "/unload")), deadline))
        .status();
  }

  absl::Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                          uint64_t offset, uint64_t byte_size) override {
    inference::SystemSharedMemoryRegisterRequest request;
    request.set_key(key);
    request.set_offset(offset);
    request.set_byte_size(byte_size);
    const std::string body = internal::RegisterBody(request);
    return BodyOf(
               Call(Post(absl::StrCat("/v2/systemsharedmemory/region/", name, "/register"), &body),
                    absl::ZeroDuration()))
        .status();
  }

  absl::Status UnregisterSystemSharedMemory(const std::string& name) override {
    return BodyOf(Call(Post(absl::StrCat(SharedMemoryPath(name), "/unregister")),
                       absl::ZeroDuration()))
        .status();
  }

  absl::StatusOr<std::vector<SharedMemoryStatus>> SystemSharedMemoryStatus(
      const std::string& name) override {
    absl::StatusOr<std::string> body =
        BodyOf(Call(Get(absl::StrCat(SharedMemoryPath(name), "/status")), absl::ZeroDuration()));
    if (!body.ok()) return body.status();
    absl::StatusOr<inference::SystemSharedMemoryStatusResponse> status =
        internal::ParseSharedMemoryStatus(*body);
    if (!status.ok()) return status.status();
    return internal::SharedMemoryStatusFrom(*status);
  }

  absl::StatusOr<Tensor> Infer(const std::string& model, const std::string& version,
                               const Tensor& input, const InferOptions& options) override {
    absl::StatusOr<std::shared_ptr<const RestPreparedRequest>> prepared =
        PrepareRest(model, version, input, options);
    if (!prepared.ok()) return prepared.status();
    if (absl::Status s = internal::CheckOutputView(options); !s.ok()) return s;
    absl::StatusOr<inference::ModelInferResponse> response =
        InferResponseOf(Call((*prepared)->Call(), options.deadline));
    if (!response.ok()) return response.status();
    return internal::OutputTensor(*response, options);
  }

  absl::StatusOr<std::shared_ptr<const PreparedRequest>> Prepare(
      const std::string& model, const std::string& version, const Tensor& input,
      const InferOptions& options) override {
    return PrepareRest(model, version, input, options);
  }

  // Runs on a worker of its own (see rest_client.h); `done` from there, or at
  // once on this thread for a request this protocol did not prepare.
  void InferAsync(std::shared_ptr<const PreparedRequest> request, absl::Duration deadline,
                  std::function<void(AsyncInferResult)> done) override {
    absl::StatusOr<std::shared_ptr<const RestPreparedRequest>> prepared =
        internal::AsPrepared<RestPreparedRequest>(std::move(request), "REST");
    if (!prepared.ok()) return internal::FailAtOnce(done, prepared.status());
    StartAsync(*std::move(prepared), DeadlineOf(deadline), std::move(done));
  }

  absl::StatusOr<std::unique_ptr<InferStream>> OpenStream() override {
    return absl::UnimplementedError("streaming is gRPC only (ModelStreamInfer)");
  }

 private:
  // Prepare, typed as this protocol's request.
  absl::StatusOr<std::shared_ptr<const RestPreparedRequest>> PrepareRest(
      const std::string& model, const std::string& version, const Tensor& input,
      const InferOptions& options) const {
    if (options.typed) {
      return absl::InvalidArgumentError(
          "typed contents are gRPC's; over REST, ClientOptions::http_json sends JSON \"data\"");
    }
    // JSON "data" is the REST form of typed contents (none with shared memory).
    InferOptions proto_options = options;
    proto_options.typed = options_.http_json && !options.input_shared_memory;
    absl::StatusOr<inference::ModelInferRequest> request =
        internal::BuildRequest(model, version, input, proto_options);
    if (!request.ok()) return request.status();
    const int64_t samples = input.shape.empty() ? 1 : input.shape[0];
    return std::make_shared<RestPreparedRequest>(
        internal::ModelPath(model, version) + "/infer",
        internal::EncodeInferRequest(*request, /*binary_output=*/!options_.http_json), samples,
        internal::OutputShmBytes(options));
  }

  // Hands the call to a worker, which exchanges it on its connection by
  // `until` and runs `done`.
  void StartAsync(std::shared_ptr<const RestPreparedRequest> request, absl::Time until,
                  std::function<void(AsyncInferResult)> done) {
    const absl::Time start = absl::Now();
    // Exactly one of the job's run and cancel takes it.
    auto shared_done = std::make_shared<std::function<void(AsyncInferResult)>>(std::move(done));
    workers_.Submit(
        [this, request = std::move(request), until, start, shared_done](
            HttpConnection& connection, const std::atomic<bool>& closing) -> HttpWorkers::Finish {
          AsyncInferResult result;
          // Only the output's shape and size are wanted: its values are
          // not copied out of the body (as over gRPC).
          std::optional<int64_t> skipped;
          absl::StatusOr<inference::ModelInferResponse> response =
              InferResponseOf(Exchange(connection, request->Call(), until, &closing), &skipped);
          result.latency = absl::Now() - start;
          result.status = response.status();
          if (response.ok()) {
            result.status =
                internal::ReadOutput(*response, request->output_shm_bytes(), &result.output_shape,
                                     &result.output_bytes, nullptr, skipped);
          }
          return [shared_done, result = std::move(result)]() mutable {
            (*shared_done)(std::move(result));
          };
        },
        [shared_done, start] {
          AsyncInferResult result;
          result.status = absl::CancelledError("the client is being destroyed");
          result.latency = absl::Now() - start;
          (*shared_done)(std::move(result));
        });
  }

  static std::string SharedMemoryPath(const std::string& name) {
    return name.empty() ? "/v2/systemsharedmemory"
                        : absl::StrCat("/v2/systemsharedmemory/region/", name);
  }

  absl::Time DeadlineOf(absl::Duration deadline) const {
    return absl::Now() + (deadline > absl::ZeroDuration() ? deadline : options_.default_deadline);
  }

  // `call` on an idle connection (a new one when none is), which goes back
  // to the idle pool afterwards.
  absl::StatusOr<HttpAnswer> Call(const HttpCall& call, absl::Duration deadline) {
    std::unique_ptr<HttpConnection> connection;
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        connection = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (connection == nullptr) connection = connector_->Connect();
    absl::StatusOr<HttpAnswer> response =
        Exchange(*connection, call, DeadlineOf(deadline), nullptr);
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(connection));
    return response;
  }

  // Sends `call` on `connection`, again after a failure without an HTTP
  // answer (see rest_client.h), until `deadline` or `closing`.
  absl::StatusOr<HttpAnswer> Exchange(HttpConnection& connection, const HttpCall& call,
                                      absl::Time deadline, const std::atomic<bool>* closing) const {
    for (int attempt = 1;; ++attempt) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            absl::StrCat("deadline exceeded before an answer from ", connector_->address()));
      }
      absl::StatusOr<HttpAnswer> answer = connection.Exchange(call, deadline);
      if (answer.ok()) return answer;
      absl::Status status = answer.status();
      if (closing != nullptr && closing->load()) {
        return absl::CancelledError("the client is being destroyed");
      }
      if (status.code() != absl::StatusCode::kUnavailable || attempt >= options_.max_attempts) {
        return status;
      }
      // The first resend at once (a kept-alive connection the server had
      // closed), then from 50 ms, doubling, at most 1 s.
      if (attempt > 1) {
        absl::SleepFor(std::min({absl::Milliseconds(50) * (1 << std::min(attempt - 2, 5)),
                                 absl::Seconds(1), deadline - absl::Now()}));
      }
    }
  }

  const ClientOptions options_;
  const std::unique_ptr<HttpConnector> connector_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<HttpConnection>> idle_ ABSL_GUARDED_BY(mu_);
  // Last: closed (its threads joined) before the members they use go.
  HttpWorkers workers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> CreateRestClient(const std::string& address,
                                                         const ClientOptions& options) {
  absl::StatusOr<std::unique_ptr<HttpConnector>> connector =
      HttpConnector::Create(address, options);
  if (!connector.ok()) return connector.status();
  return std::unique_ptr<Client>(new RestClient(*std::move(connector), options));
}

}  // namespace sepconv::client
