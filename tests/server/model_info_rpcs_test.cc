// Triton's ModelConfig and ModelStatistics over gRPC against the in-process
// server (built-in model `sepconv` and the second test model), with a stub
// generated from the same proto: effective config with its defaults,
// unknown models and versions, statistics that agree with a /metrics scrape
// after a mixed workload, and auth on every new RPC.

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server_test_util.h"
#include "tests/testing/exposition.h"
#include "tests/testing/http_get.h"

namespace sepconv {
namespace {

using testing::ContextWithDeadline;
using ::testing::ElementsAre;
using testing::TestServer;

grpc::Status GetConfig(inference::GRPCInferenceService::Stub& stub, const std::string& name,
                       const std::string& version, inference::ModelConfigResponse* response) {
  inference::ModelConfigRequest request;
  request.set_name(name);
  request.set_version(version);
  auto context = ContextWithDeadline(10);
  return stub.ModelConfig(context.get(), request, response);
}

grpc::Status GetStats(inference::GRPCInferenceService::Stub& stub, const std::string& name,
                      const std::string& version, inference::ModelStatisticsResponse* response) {
  inference::ModelStatisticsRequest request;
  request.set_name(name);
  request.set_version(version);
  auto context = ContextWithDeadline(10);
  return stub.ModelStatistics(context.get(), request, response);
}

TEST(ModelConfigRpc, BuiltInModelShowsWhatWasDefaulted) {
  ServerOptions options = TestServer::DefaultOptions();
  options.scheduler.max_batch_size = 4;
  options.scheduler.max_queue_delay = absl::Microseconds(300);
  options.scheduler.max_queue_size = 77;
  options.instances = 2;
  TestServer server(options);
  auto stub = server.NewStub();
  inference::ModelConfigResponse response;
  grpc::Status status = GetConfig(*stub, "sepconv", "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const ModelConfig& config = response.config();
  EXPECT_EQ(config.name(), "sepconv");
  EXPECT_EQ(config.backend(), "sepconv");
  EXPECT_EQ(config.max_batch_size(), 4);
  ASSERT_TRUE(config.has_dynamic_batching());
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(), 300u);
  EXPECT_EQ(config.dynamic_batching().default_queue_policy().max_queue_size(), 77u);
  ASSERT_EQ(config.instance_group_size(), 1);
  EXPECT_EQ(config.instance_group(0).count(), 2);
  EXPECT_EQ(config.instance_group(0).kind(), ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(config.instance_group(0).name(), "sepconv_0");
  ASSERT_TRUE(config.version_policy().has_latest());
  EXPECT_EQ(config.version_policy().latest().num_versions(), 1u);
  // Triton's convention: no batch dim when max_batch_size > 0.
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "input");
  EXPECT_EQ(config.input(0).data_type(), TYPE_FP32);
  EXPECT_THAT(config.input(0).dims(), ElementsAre(32, -1, -1));
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).name(), "output");
  EXPECT_THAT(config.output(0).dims(), ElementsAre(64, -1, -1));

  // Version "1" explicitly gives the same config.
  inference::ModelConfigResponse v1;
  ASSERT_TRUE(GetConfig(*stub, "sepconv", "1", &v1).ok());
  EXPECT_EQ(v1.config().SerializeAsString(), config.SerializeAsString());
}

TEST(ModelConfigRpc, BatchingOffShowsTheBatchDim) {
  ServerOptions options = TestServer::DefaultOptions();
  options.scheduler.max_batch_size = 0;
  TestServer server(options);
  auto stub = server.NewStub();
  inference::ModelConfigResponse response;
  ASSERT_TRUE(GetConfig(*stub, "sepconv", "", &response).ok());
  EXPECT_EQ(response.config().max_batch_size(), 0);
  EXPECT_FALSE(response.config().has_dynamic_batching());
  EXPECT_THAT(response.config().input(0).dims(), ElementsAre(-1, 32, -1, -1));
}

TEST(ModelConfigRpc, UnknownModelOrVersionIsNotFound) {
  TestServer server;
  auto stub = server.NewStub();
  inference::ModelConfigResponse response;
  EXPECT_EQ(GetConfig(*stub, "nope", "", &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetConfig(*stub, "sepconv", "7", &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(ModelStatisticsRpc, UnknownModelOrVersionIsNotFound) {
  TestServer server;
  auto stub = server.NewStub();
  inference::ModelStatisticsResponse response;
  EXPECT_EQ(GetStats(*stub, "nope", "", &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetStats(*stub, "sepconv", "9", &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(ModelStatisticsRpc, EmptyNameListsEveryModel) {
  TestServer server;
  auto stub = server.NewStub();
  inference::ModelStatisticsResponse response;
  ASSERT_TRUE(GetStats(*stub, "", "", &response).ok());
  std::vector<std::string> names;
  for (const inference::ModelStatistics& s : response.model_stats()) {
    names.push_back(s.name() + "/" + s.version());
    EXPECT_EQ(s.inference_count(), 0u);
    EXPECT_EQ(s.last_inference(), 0u);
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "sepconv/1", std::string(testing::kValidPaddingModel) + "/1"));
}

uint64_t Nanos(double seconds) { return static_cast<uint64_t>(std::llround(seconds * 1e9)); }

TEST(ModelStatisticsRpc, AgreesWithMetricsAfterMixedWorkload) {
  ServerOptions options = TestServer::DefaultOptions();
  options.scheduler.max_batch_size = 4;
  options.scheduler.max_queue_delay = absl::Microseconds(200);
  TestServer server(options);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1", 0, server.metrics().registry());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  auto stub = server.NewStub();
  const uint64_t before_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));

  int ok = 0, failed = 0;
  for (int i = 0; i < 12; ++i) {
    const Dims4 dims{1 + i % 3, 32, 6, 5};
    inference::ModelInferRequest request = testing::MakeInferRequest(
        "sepconv", dims, testing::RandomTensor(testing::Elements(dims), i), i % 2 == 0);
    if (i % 4 == 3) request.mutable_inputs(0)->set_datatype("FP64");  // INVALID_ARGUMENT
    inference::ModelInferResponse response;
    auto context = ContextWithDeadline(30);
    grpc::Status status = stub->ModelInfer(context.get(), request, &response);
    (status.ok() ? ok : failed)++;
  }
  ASSERT_EQ(ok, 9);
  ASSERT_EQ(failed, 3);

  inference::ModelStatisticsResponse response;
  grpc::Status status = GetStats(*stub, "sepconv", "1", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<testing::HttpResponse> scrape = testing::HttpGet((*endpoint)->port(), "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  absl::StatusOr<testing::Exposition> metrics = testing::Exposition::Parse(scrape->body);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const testing::SampleLabels labels = {{"model", "sepconv"}, {"version", "1"}};
  auto value = [&](const std::string& name, testing::SampleLabels extra = {}) {
    extra.insert(labels.begin(), labels.end());
    return metrics->Value(name, extra).value_or(-1);
  };

  ASSERT_EQ(response.model_stats_size(), 1);
  const inference::ModelStatistics& s = response.model_stats(0);
  EXPECT_EQ(s.name(), "sepconv");
  EXPECT_EQ(s.version(), "1");
  const inference::InferStatistics& infer = s.inference_stats();
  EXPECT_EQ(infer.success().count(), 9u);
  EXPECT_EQ(infer.fail().count(), 3u);
  EXPECT_EQ(infer.success().count(), value("sepconv_inference_requests_total", {{"status", "ok"}}));
  EXPECT_EQ(infer.fail().count(),
            value("sepconv_inference_requests_total", {{"status", "INVALID_ARGUMENT"}}));
  // The exposition prints sums with limited precision: agree to 1 us.
  EXPECT_NEAR(static_cast<double>(infer.success().ns() + infer.fail().ns()),
              static_cast<double>(Nanos(value("sepconv_request_duration_seconds_sum"))), 1000);
  EXPECT_GT(infer.success().ns(), 0u);
  EXPECT_EQ(infer.queue().count(), value("sepconv_queue_duration_seconds_count"));
  EXPECT_NEAR(static_cast<double>(infer.queue().ns()),
              static_cast<double>(Nanos(value("sepconv_queue_duration_seconds_sum"))), 1000);
  EXPECT_EQ(infer.compute_infer().count(), value("sepconv_compute_duration_seconds_count"));
  EXPECT_NEAR(static_cast<double>(infer.compute_infer().ns()),
              static_cast<double>(Nanos(value("sepconv_compute_duration_seconds_sum"))), 1000);
  EXPECT_GT(infer.compute_infer().ns(), 0u);
  EXPECT_EQ(s.inference_count(), value("sepconv_inference_samples_total"));
  EXPECT_EQ(s.execution_count(), value("sepconv_inference_executions_total"));
  // Samples of the 9 good requests: sizes 1,2,3 cycling (i % 4 != 3).
  uint64_t samples = 0;
  for (int i = 0; i < 12; ++i) {
    if (i % 4 != 3) samples += 1 + i % 3;
  }
  EXPECT_EQ(s.inference_count(), samples);
  EXPECT_GE(s.execution_count(), 1u);
  EXPECT_LE(s.execution_count(), 9u);
  EXPECT_GE(s.last_inference(), before_ms);
  EXPECT_LE(s.last_inference(), static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
}

TEST(ModelStatisticsRpc, MetricsOffIsUnavailable) {
  auto registry = std::make_shared<ModelRegistry>();
  ServerOptions options = TestServer::DefaultOptions();
  ASSERT_TRUE(AddDefaultModel(options, nullptr, registry.get()).ok());
  auto server = Server::Start(options, registry, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  inference::ModelStatisticsResponse response;
  EXPECT_EQ(GetStats(*stub, "", "", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
  (*server)->Shutdown();
}

TEST(TritonExtensionsAuth, TokenAppliesToEveryNewRpcAndHealthStaysOpen) {
  absl::StatusOr<ServerOptions> options =
      testing::WithTokens(TestServer::DefaultOptions(), {"s3cret"});
  ASSERT_TRUE(options.ok()) << options.status();
  TestServer server(*options);
  auto stub = server.NewStub();
  for (const char* token : {"", "Bearer wrong", "Bearer s3cret"}) {
    const grpc::StatusCode want = std::string(token) == "Bearer s3cret"
                                      ? grpc::StatusCode::OK
                                      : grpc::StatusCode::UNAUTHENTICATED;
    auto context = [&] {
      auto c = ContextWithDeadline(10);
      if (*token != '\0') c->AddMetadata("authorization", token);
      return c;
    };
    {
      inference::ModelConfigRequest request;
      request.set_name("sepconv");
      inference::ModelConfigResponse response;
      EXPECT_EQ(stub->ModelConfig(context().get(), request, &response).error_code(), want) << token;
    }
    {
      inference::ModelStatisticsRequest request;
      inference::ModelStatisticsResponse response;
      EXPECT_EQ(stub->ModelStatistics(context().get(), request, &response).error_code(), want)
          << token;
    }
    {
      inference::ServerLiveRequest request;
      inference::ServerLiveResponse response;
      EXPECT_TRUE(stub->ServerLive(context().get(), request, &response).ok()) << token;
      inference::ModelReadyRequest ready;
      ready.set_name("sepconv");
      inference::ModelReadyResponse ready_response;
      EXPECT_TRUE(stub->ModelReady(context().get(), ready, &ready_response).ok()) << token;
    }
  }
}

}  // namespace
}  // namespace sepconv
