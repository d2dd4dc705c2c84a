// In-process tests of the KServe v2 service over 127.0.0.1: every RPC, raw
// and typed tensors against the naive reference, each malformed request
// (code, message, metrics, and the server still serving), health, reflection,
// concurrent clients and graceful shutdown.

#include "server/grpc/inference_service.h"

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "health.grpc.pb.h"
#include "server/models/served_model.h"
#include "server_test_util.h"
#include "tests/testing/engine_gate.h"

namespace sepconv {
namespace {

using testing::ContextWithDeadline;
using testing::Elements;
using testing::EngineGate;
using testing::MakeInferRequest;
using testing::MalformedCase;
using testing::MaxRelativeError;
using testing::OutputFloats;
using testing::RandomTensor;
using testing::TestServer;

constexpr double kTolerance = 1e-4;

std::vector<float> Reference(const Dims4& dims, const std::vector<float>& input) {
  absl::StatusOr<std::vector<float>> out = ReferenceForward(DefaultModel(), dims, input);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<float>{};
}

class InferenceServiceTest : public ::testing::Test {
 protected:
  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    auto context = ContextWithDeadline();
    return stub_->ModelInfer(context.get(), request, response);
  }
  // Sends a good request and checks the answer against the reference.
  void ExpectGoodInfer(const Dims4& dims, bool raw, uint64_t seed) {
    const std::vector<float> input = RandomTensor(Elements(dims), seed);
    inference::ModelInferResponse response;
    grpc::Status status = Infer(MakeInferRequest("sepconv", dims, input, raw), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 1 : 0);
    EXPECT_LT(MaxRelativeError(OutputFloats(response), Reference(dims, input)), kTolerance);
  }

  TestServer server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_ = server_.NewStub();
};

TEST_F(InferenceServiceTest, ServerLiveReadyAndMetadata) {
  auto context = ContextWithDeadline();
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(context.get(), {}, &live).ok());
  EXPECT_TRUE(live.live());

  context = ContextWithDeadline();
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(context.get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  context = ContextWithDeadline();
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(context.get(), {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "sepconv-serve");
  EXPECT_FALSE(metadata.version().empty());
}

// ServerMetadata lists Triton's names for the extensions served, and each
// one listed answers (a client discovers them from the list).
TEST_F(InferenceServiceTest, ServerMetadataListsTheExtensionsItServes) {
  auto context = ContextWithDeadline();
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(context.get(), {}, &metadata).ok());
  EXPECT_THAT(metadata.extensions(),
              ::testing::UnorderedElementsAre("binary_tensor_data", "model_configuration",
                                              "model_repository", "statistics"));

  inference::ModelConfigRequest config_request;
  config_request.set_name("sepconv");
  inference::ModelConfigResponse config;
  context = ContextWithDeadline();
  grpc::Status status = stub_->ModelConfig(context.get(), config_request, &config);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(config.config().name(), "sepconv");

  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name("sepconv");
  inference::ModelStatisticsResponse stats;
  context = ContextWithDeadline();
  status = stub_->ModelStatistics(context.get(), stats_request, &stats);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stats.model_stats_size(), 1);

  inference::RepositoryIndexResponse index;
  context = ContextWithDeadline();
  status = stub_->RepositoryIndex(context.get(), {}, &index);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(std::any_of(index.models().begin(), index.models().end(),
                          [](const auto& model) { return model.name() == "sepconv"; }));
}

TEST_F(InferenceServiceTest, ModelReadyPerVersion) {
  auto ask = [this](const std::string& name, const std::string& version) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    auto context = ContextWithDeadline();
    EXPECT_TRUE(stub_->ModelReady(context.get(), request, &response).ok());
    return response.ready();
  };
  EXPECT_TRUE(ask("sepconv", ""));
  EXPECT_TRUE(ask("sepconv", "1"));
  EXPECT_FALSE(ask("sepconv", "2"));
  EXPECT_FALSE(ask("unknown", ""));
}

TEST_F(InferenceServiceTest, ModelMetadataShowsVariableDimsAsMinusOne) {
  inference::ModelMetadataRequest request;
  request.set_name("sepconv");
  inference::ModelMetadataResponse response;
  auto context = ContextWithDeadline();
  ASSERT_TRUE(stub_->ModelMetadata(context.get(), request, &response).ok());
  EXPECT_EQ(response.name(), "sepconv");
  ASSERT_EQ(response.versions_size(), 1);
  EXPECT_EQ(response.versions(0), "1");
  ASSERT_EQ(response.inputs_size(), 1);
  EXPECT_EQ(response.inputs(0).name(), "input");
  EXPECT_EQ(response.inputs(0).datatype(), "FP32");
  EXPECT_EQ(
      std::vector<int64_t>(response.inputs(0).shape().begin(), response.inputs(0).shape().end()),
      (std::vector<int64_t>{-1, 32, -1, -1}));
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "output");
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{-1, 64, -1, -1}));

  request.set_name("unknown");
  context = ContextWithDeadline();
  grpc::Status status = stub_->ModelMetadata(context.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(InferenceServiceTest, RawRequestGetsRawAnswerMatchingReference) {
  ExpectGoodInfer({1, 32, 8, 8}, /*raw=*/true, 11);
  ExpectGoodInfer({3, 32, 7, 13}, /*raw=*/true, 12);
}

TEST_F(InferenceServiceTest, TypedRequestGetsTypedAnswerMatchingReference) {
  ExpectGoodInfer({1, 32, 8, 8}, /*raw=*/false, 13);
  ExpectGoodInfer({2, 32, 5, 9}, /*raw=*/false, 14);
}

TEST_F(InferenceServiceTest, ResponseCarriesNameVersionIdAndShape) {
  const Dims4 dims{2, 32, 6, 4};
  auto request = MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), 15), true);
  request.set_id("abc-123");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.model_name(), "sepconv");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "abc-123");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{2, 64, 6, 4}));
}

TEST_F(InferenceServiceTest, ExpiredTimeoutParameterEndsDeadlineExceeded) {
  // The engine is held at a gate (tests/testing/engine_gate.h) on another
  // request, so the 1 us timeout passes with the request queued, on any CPU.
  EngineGate gate;
  ServerOptions options = TestServer::DefaultOptions();
  options.scheduler.before_batch = gate.Hook();
  TestServer held(options);
  auto stub = held.NewStub();
  const Dims4 dims{1, 32, 8, 8};
  gate.Close();
  std::thread plug([&] {
    inference::ModelInferResponse response;
    auto context = ContextWithDeadline(120);
    EXPECT_TRUE(
        stub->ModelInfer(context.get(),
                         MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), 15), true),
                         &response)
            .ok());
  });
  ASSERT_TRUE(gate.WaitParked().ok());
  auto request = MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), 16), true);
  (*request.mutable_parameters())["timeout"].set_int64_param(1);  // 1 us
  inference::ModelInferResponse response;
  auto context = ContextWithDeadline(60);
  grpc::Status status = stub->ModelInfer(context.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  gate.Open();
  plug.join();
  ExpectGoodInfer(dims, true, 17);
}

class MalformedOverGrpcTest : public InferenceServiceTest,
                              public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(MalformedOverGrpcTest, PreciseStatusCountedAndServerKeepsServing) {
  const MalformedCase& c = GetParam();
  const std::string code_name = absl::StatusCodeToString(c.code);
  const double before = server_.RequestCount(code_name);
  const Dims4 dims{1, 32, 8, 8};
  auto request = MakeInferRequest(c.model, dims, RandomTensor(Elements(dims), 1), true);
  c.mutate(&request);
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  EXPECT_EQ(static_cast<int>(status.error_code()), static_cast<int>(c.code));
  EXPECT_NE(status.error_message().find(c.needle), std::string::npos)
      << "message: " << status.error_message() << "\nexpected to contain: " << c.needle;
  // Validation failures of a served model (the gRPC parser's included) are
  // counted under their status; client-chosen unknown names are not (see
  // server/core/inference_core.h).
  if (c.model == "sepconv") {
    EXPECT_EQ(server_.RequestCount(code_name) - before, c.validation ? 1.0 : 0.0);
  }
  ExpectGoodInfer(dims, /*raw=*/true, 18);
}

INSTANTIATE_TEST_SUITE_P(AllCases, MalformedOverGrpcTest,
                         ::testing::ValuesIn(testing::MalformedCases()),
                         [](const auto& info) { return info.param.name; });

TEST(InferenceServiceLimitsTest, RequestAboveMaxMessageBytesIsResourceExhausted) {
  ServerOptions options = TestServer::DefaultOptions();
  options.max_message_bytes = 1 << 20;
  TestServer server(options);
  // A client that would send more than the server accepts.
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.server().grpc_port()),
                                grpc::InsecureChannelCredentials(), args));
  const Dims4 big{1, 32, 128, 128};  // 2 MiB
  inference::ModelInferResponse response;
  auto context = ContextWithDeadline();
  grpc::Status status = stub->ModelInfer(
      context.get(), MakeInferRequest("sepconv", big, RandomTensor(Elements(big), 30), true),
      &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // Small requests still work on the same server.
  const Dims4 small{1, 32, 8, 8};
  const std::vector<float> input = RandomTensor(Elements(small), 31);
  context = ContextWithDeadline();
  ASSERT_TRUE(
      stub->ModelInfer(context.get(), MakeInferRequest("sepconv", small, input, true), &response)
          .ok());
  EXPECT_LT(MaxRelativeError(OutputFloats(response), Reference(small, input)), kTolerance);
}

// As Triton: a model configured with max_batch_size N > 0 refuses requests
// of more than N samples; with batching off (0) any batch is taken.
TEST(InferenceServiceLimitsTest, BatchAboveMaxBatchSizeIsRefusedAsTritonDoes) {
  for (int max_batch_size : {4, 0}) {
    ServerOptions options = TestServer::DefaultOptions();
    options.scheduler.max_batch_size = max_batch_size;
    TestServer server(options);
    auto stub = server.NewStub();
    for (int64_t n : {int64_t{4}, int64_t{5}}) {
      const Dims4 dims{n, 32, 6, 6};
      const std::vector<float> input = RandomTensor(Elements(dims), 33);
      inference::ModelInferResponse response;
      auto context = ContextWithDeadline();
      grpc::Status status = stub->ModelInfer(
          context.get(), MakeInferRequest("sepconv", dims, input, true), &response);
      if (max_batch_size > 0 && n > max_batch_size) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
        EXPECT_NE(status.error_message().find("inference request batch-size must be <= 4 for "
                                              "'sepconv'"),
                  std::string::npos)
            << status.error_message();
      } else {
        ASSERT_TRUE(status.ok()) << "max_batch_size " << max_batch_size << ", n " << n << ": "
                                 << status.error_message();
        EXPECT_LT(MaxRelativeError(OutputFloats(response), Reference(dims, input)), kTolerance);
      }
    }
  }
}

TEST(InferenceServiceLimitsTest, DefaultMessageLimitFitsA224RequestAndItsOutput) {
  TestServer server;
  auto stub = server.NewStub();
  const Dims4 dims{1, 32, 224, 224};
  inference::ModelInferResponse response;
  auto context = ContextWithDeadline(120);
  grpc::Status status = stub->ModelInfer(
      context.get(), MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), 32), true),
      &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(OutputFloats(response).size(), size_t{64} * 224 * 224);
}

TEST_F(InferenceServiceTest, SuccessesAreCountedAsOk) {
  const double before = server_.RequestCount("ok");
  ExpectGoodInfer({1, 32, 4, 4}, true, 19);
  EXPECT_EQ(server_.RequestCount("ok") - before, 1.0);
}

TEST_F(InferenceServiceTest, EightConcurrentClientsGetTheirOwnAnswers) {
  constexpr int kClients = 8;
  constexpr int kRequestsEach = 6;
  std::atomic<int> correct{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int client = 0; client < kClients; ++client) {
    clients.emplace_back([&, client] {
      auto stub = server_.NewStub();
      for (int i = 0; i < kRequestsEach; ++i) {
        const uint64_t seed = 1000 + client * 100 + i;
        const Dims4 dims{1 + (client + i) % 3, 32, 5 + client % 4, 6 + i % 3};
        const bool raw = (client + i) % 2 == 0;
        const std::vector<float> input = RandomTensor(Elements(dims), seed);
        inference::ModelInferResponse response;
        auto context = ContextWithDeadline();
        grpc::Status status = stub->ModelInfer(
            context.get(), MakeInferRequest("sepconv", dims, input, raw), &response);
        if (!status.ok()) {
          failures[client] = status.error_message();
          continue;
        }
        if (MaxRelativeError(OutputFloats(response), Reference(dims, input)) < kTolerance) {
          ++correct;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  for (const std::string& f : failures) EXPECT_EQ(f, "");
  EXPECT_EQ(correct.load(), kClients * kRequestsEach);
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(grpc::Channel* channel,
                                                            const std::string& service,
                                                            grpc::StatusCode* code) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  auto context = ContextWithDeadline(10);
  *code = stub->Check(context.get(), request, &response).error_code();
  return response.status();
}

TEST_F(InferenceServiceTest, HealthOverallPerServiceAndPerModel) {
  using grpc::health::v1::HealthCheckResponse;
  for (const std::string service :
       {"", "inference.GRPCInferenceService", "sepconv", testing::kValidPaddingModel}) {
    grpc::StatusCode code;
    EXPECT_EQ(Health(server_.channel().get(), service, &code), HealthCheckResponse::SERVING)
        << service;
    EXPECT_EQ(code, grpc::StatusCode::OK) << service;
  }
  grpc::StatusCode code;
  Health(server_.channel().get(), "no_such_model", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);

  // A version that fails to load turns its model's health NOT_SERVING.
  server_.registry().MarkUnavailable("broken", "1", "load failed");
  EXPECT_EQ(Health(server_.channel().get(), "broken", &code), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(server_.channel().get(), "", &code), HealthCheckResponse::NOT_SERVING);
  server_.registry().Remove("broken", "1");
  EXPECT_EQ(Health(server_.channel().get(), "", &code), HealthCheckResponse::SERVING);
}

// Lists services through grpc.reflection.v1alpha with a generic stub; the
// message types come from the reflection library the server links.
std::vector<std::string> ListServicesByReflection(const std::shared_ptr<grpc::Channel>& channel) {
  namespace pb = google::protobuf;
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  const pb::Descriptor* request_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const pb::Descriptor* response_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (request_type == nullptr || response_type == nullptr) {
    ADD_FAILURE() << "reflection descriptors not linked in";
    return {};
  }
  pb::MessageFactory* factory = pb::MessageFactory::generated_factory();
  std::unique_ptr<pb::Message> request(factory->GetPrototype(request_type)->New());
  request->GetReflection()->SetString(request.get(), request_type->FindFieldByName("list_services"),
                                      "*");
  std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer out(&slice, 1);

  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t expected) {
    return cq.Next(&tag, &ok) && ok && reinterpret_cast<intptr_t>(tag) == expected;
  };
  grpc::ByteBuffer in;
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(step(1));
  call->Write(out, reinterpret_cast<void*>(2));
  EXPECT_TRUE(step(2));
  call->Read(&in, reinterpret_cast<void*>(3));
  EXPECT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  EXPECT_TRUE(step(4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  EXPECT_TRUE(step(5));
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(in.Dump(&slices).ok());
  std::string received;
  for (const grpc::Slice& s : slices)
    received.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<pb::Message> response(factory->GetPrototype(response_type)->New());
  EXPECT_TRUE(response->ParseFromString(received));
  const pb::FieldDescriptor* list_field = response_type->FindFieldByName("list_services_response");
  const pb::Message& list = response->GetReflection()->GetMessage(*response, list_field);
  const pb::FieldDescriptor* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const pb::Message& service = list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(service.GetReflection()->GetString(
        service, service.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

TEST_F(InferenceServiceTest, ReflectionListsTheInferenceService) {
  std::vector<std::string> services = ListServicesByReflection(server_.channel());
  EXPECT_NE(std::find(services.begin(), services.end(), "inference.GRPCInferenceService"),
            services.end())
      << "listed: " << services.size();
  EXPECT_NE(std::find(services.begin(), services.end(), "grpc.health.v1.Health"), services.end());
}

// A scheduler that keeps jobs until released, so a test can look at the
// server while it drains.
class GatedScheduler : public Scheduler {
 public:
  absl::Status Submit(std::unique_ptr<InferenceJob> job) override {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::UnavailableError("stopped");
    jobs_.push_back(std::move(job));
    return absl::OkStatus();
  }
  // Held jobs count as running: a cancel does not stop them.
  void Cancel(uint64_t) override {}
  void Shutdown(absl::Time) override {
    std::vector<std::unique_ptr<InferenceJob>> jobs;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
      shutdown_started_.Notify();
      mu_.Await(absl::Condition(&released_));
      jobs.swap(jobs_);
    }
    for (auto& job : jobs) {
      std::fill(job->output, job->output + 64 * job->dims.n * job->dims.h * job->dims.w, 1.0f);
      job->done(absl::OkStatus());
    }
  }
  int64_t queued() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(jobs_.size());
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  int64_t Queued() const { return queued(); }
  absl::Notification shutdown_started_;

 private:
  mutable absl::Mutex mu_;
  bool stopped_ = false;
  bool released_ = false;
  std::vector<std::unique_ptr<InferenceJob>> jobs_;
};

TEST_F(InferenceServiceTest, ShutdownTurnsReadinessOffRefusesNewWorkAndFinishesQueued) {
  auto gated_owned = std::make_unique<GatedScheduler>();
  GatedScheduler* gated = gated_owned.get();
  server_.registry().AddOrReplace(
      std::make_shared<ServedModel>("gated", "1", std::make_shared<const ModelSpec>(DefaultModel()),
                                    std::move(gated_owned), nullptr));

  // One request queued on the gated model.
  const Dims4 dims{1, 32, 4, 4};
  auto queued_request = MakeInferRequest("gated", dims, RandomTensor(Elements(dims), 20), true);
  inference::ModelInferResponse queued_response;
  grpc::ClientContext queued_context;
  queued_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  absl::Notification queued_done;
  grpc::Status queued_status;
  stub_->async()->ModelInfer(&queued_context, &queued_request, &queued_response,
                             [&](grpc::Status s) {
                               queued_status = s;
                               queued_done.Notify();
                             });
  for (int i = 0; i < 12000 && gated->Queued() == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(gated->Queued(), 1);  // (the loop is a 60 s hang guard)

  std::thread shutdown([this] { server_.server().Shutdown(absl::Now() + absl::Seconds(20)); });
  ASSERT_TRUE(gated->shutdown_started_.WaitForNotificationWithTimeout(absl::Seconds(10)));

  // Draining: not ready, health NOT_SERVING, new inference UNAVAILABLE.
  auto context = ContextWithDeadline(10);
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(context.get(), {}, &ready).ok());
  EXPECT_FALSE(ready.ready());
  grpc::StatusCode code;
  EXPECT_EQ(Health(server_.channel().get(), "", &code),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(server_.channel().get(), "sepconv", &code),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // The refusal is held until gRPC's Shutdown has begun (after the drain),
  // so its client cannot race the GOAWAY.
  inference::ModelInferResponse refused;
  grpc::Status status;
  std::thread refused_client([&] {
    status =
        Infer(MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), 21), true), &refused);
  });
  // Held, not answered, whatever the machine's speed (60 s hang guard).
  const InferenceCore& core = *server_.server().core();
  for (int i = 0; i < 12000 && core.held_refusals() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(core.held_refusals(), 1);
  EXPECT_FALSE(queued_done.HasBeenNotified());

  gated->Release();
  shutdown.join();
  refused_client.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(queued_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(queued_status.ok()) << queued_status.error_message();
  EXPECT_EQ(OutputFloats(queued_response), std::vector<float>(64 * 4 * 4, 1.0f));
}

}  // namespace
}  // namespace sepconv
