// The client library against the real sepconv-server binary (a child process
// on free 127.0.0.1 ports): every RPC, raw and typed, answers checked against
// the engine's naive reference, errors, the async API, and bounded failure
// against unreachable or silent servers.

#include <atomic>
#include <cmath>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "engine/model_spec.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/testing/fake_grpc_server.h"
#include "tests/testing/free_port.h"
#include "tests/testing/shared_server.h"

namespace sepconv::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ClientTest : public testing::SharedServerClientTest<ClientTest> {
 public:
  static ClientOptions TestClientOptions() {
    ClientOptions options;
    options.default_deadline = absl::Seconds(30);
    return options;
  }
};

// The default model's answer computed by the engine's naive reference.
std::vector<float> Expected(const Tensor& input) {
  const Dims4 dims{input.shape[0], input.shape[1], input.shape[2], input.shape[3]};
  absl::StatusOr<std::vector<float>> out = ReferenceForward(DefaultModel(), dims, input.data);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<float>{};
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (1.0 + std::abs(want[i])));
  }
  EXPECT_LE(worst, 1e-4);
}

TEST_F(ClientTest, HealthOverallAndPerModel) {
  EXPECT_EQ(*client_->Health(""), "SERVING");
  EXPECT_EQ(*client_->Health("sepconv"), "SERVING");
  absl::StatusOr<std::string> unknown = client_->Health("no_such_model");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, LivenessReadinessAndMetadata) {
  EXPECT_TRUE(*client_->ServerLive());
  EXPECT_TRUE(*client_->ServerReady());
  absl::StatusOr<ServerInfo> server = client_->ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(server->name.empty());
  absl::StatusOr<ModelInfo> model = client_->ModelMetadata("sepconv", "");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name, "sepconv");
  ASSERT_EQ(model->inputs.size(), 1u);
  EXPECT_EQ(model->inputs[0].name, "input");
  EXPECT_EQ(model->inputs[0].datatype, "FP32");
  EXPECT_THAT(model->inputs[0].shape, ElementsAre(-1, 32, -1, -1));
  ASSERT_EQ(model->outputs.size(), 1u);
  EXPECT_THAT(model->outputs[0].shape, ElementsAre(-1, 64, -1, -1));
  EXPECT_TRUE(*client_->ModelReady("sepconv", ""));
  absl::StatusOr<ModelInfo> missing = client_->ModelMetadata("no_such_model", "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, InferRawAndTypedMatchTheReference) {
  absl::StatusOr<Tensor> input = RandomTensor({2, 32, 9, 11}, 42);
  ASSERT_TRUE(input.ok());
  const std::vector<float> want = Expected(*input);
  for (bool typed : {false, true}) {
    InferOptions options;
    options.typed = typed;
    absl::StatusOr<Tensor> out = client_->Infer("sepconv", "", *input, options);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_THAT(out->shape, ElementsAre(2, 64, 9, 11));
    ExpectClose(out->data, want);
  }
}

TEST_F(ClientTest, ErrorsCarryTheServersCodeAndMessage) {
  absl::StatusOr<Tensor> input = RandomTensor({1, 32, 8, 8}, 1);
  absl::StatusOr<Tensor> out = client_->Infer("no_such_model", "", *input, {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("no_such_model"));

  absl::StatusOr<Tensor> three = RandomTensor({1, 3, 8, 8}, 1);
  out = client_->Infer("sepconv", "", *three, {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);

  // The client refuses a tensor whose data does not match its shape itself.
  Tensor broken{{1, 32, 8, 8}, {1.0f}};
  out = client_->Infer("sepconv", "", broken, {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, ManyAsyncCallsInFlightAllSucceed) {
  absl::StatusOr<Tensor> input = RandomTensor({1, 32, 14, 14}, 3);
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
      client_->Prepare("sepconv", "", *input, {});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ((*request)->samples(), 1);
  EXPECT_GT((*request)->ByteSize(), 32 * 14 * 14 * 4);
  constexpr int kCalls = 64;
  absl::Mutex mu;
  int done = 0, ok = 0;
  for (int i = 0; i < kCalls; ++i) {
    client_->InferAsync(*request, absl::ZeroDuration(), [&](AsyncInferResult r) {
      absl::MutexLock lock(&mu);
      ++done;
      if (r.status.ok() && r.output_shape == std::vector<int64_t>{1, 64, 14, 14} &&
          r.output_bytes == 64 * 14 * 14 * 4 && r.latency > absl::ZeroDuration()) {
        ++ok;
      }
    });
  }
  absl::MutexLock lock(&mu);
  auto all_done = [&] { return done == kCalls; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60)));
  EXPECT_EQ(ok, kCalls);
}

TEST(ClientFailureTest, UnreachableServerFailsFast) {
  ClientOptions options;
  options.default_deadline = absl::Seconds(5);
  std::unique_ptr<Client> client =
      *Client::Create(absl::StrCat("127.0.0.1:", testing::FreePort().value()), options);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> health = client->Health("");
  EXPECT_EQ(health.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ClientFailureTest, SilentServerHitsTheDeadline) {
  // A socket that listens but never speaks HTTP/2.
  absl::StatusOr<std::unique_ptr<testing::LoopbackListener>> silent =
      testing::LoopbackListener::Open();
  ASSERT_TRUE(silent.ok()) << silent.status();
  ClientOptions options;
  options.default_deadline = absl::Milliseconds(300);
  std::unique_ptr<Client> client =
      *Client::Create(absl::StrCat("127.0.0.1:", (*silent)->port()), options);
  const absl::Time start = absl::Now();
  absl::StatusOr<Tensor> out = client->Infer("sepconv", "", *RandomTensor({1, 32, 8, 8}, 1), {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// A ModelInfer service whose first `failures` answers begin (response
// headers sent, so gRPC's retry policy takes the call as committed) and then
// end UNAVAILABLE: what a client sees when a server closing an aged
// connection resets it under an answer in flight. Later calls succeed with a
// [1, 1, 1, 1] output.
class CommittedFailures final : public inference::GRPCInferenceService::CallbackService {
  // Sends the response headers and fails only once they are out (a reactor
  // that did both at once could answer trailers-only, which gRPC retries).
  class CommitThenFail final : public grpc::ServerUnaryReactor {
   public:
    CommitThenFail() { StartSendInitialMetadata(); }
    void OnSendInitialMetadataDone(bool) override {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "recvmsg:Connection reset by peer"));
    }
    void OnDone() override { delete this; }
  };

 public:
  explicit CommittedFailures(int failures) : failures_(failures) {}
  int calls() const { return calls_.load(); }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest*,
                                       inference::ModelInferResponse* response) override {
    if (calls_.fetch_add(1) < failures_) return new CommitThenFail;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    response->set_model_name("sepconv");
    auto* output = response->add_outputs();
    output->set_name("output");
    output->set_datatype("FP32");
    for (int i = 0; i < 4; ++i) output->add_shape(1);
    const float value = 1.5f;
    response->add_raw_output_contents()->assign(reinterpret_cast<const char*>(&value),
                                                sizeof(value));
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const int failures_;
  std::atomic<int> calls_{0};
};

using FakeServer = testing::FakeGrpcServer<CommittedFailures>;

TEST(ClientFailureTest, InferIsSentAgainAfterAFailureGrpcCannotRetry) {
  FakeServer fake(/*failures=*/1);
  ASSERT_NE(fake.server, nullptr);
  std::unique_ptr<Client> client = *Client::Create(fake.target(), {});
  absl::StatusOr<Tensor> out = client->Infer("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->data, ElementsAre(1.5f));
  EXPECT_EQ(fake.service.calls(), 2);  // gRPC did not retry it; the client sent it once more
}

TEST(ClientFailureTest, InferAsyncIsSentAgainAfterAFailureGrpcCannotRetry) {
  FakeServer fake(/*failures=*/1);
  ASSERT_NE(fake.server, nullptr);
  std::unique_ptr<Client> client = *Client::Create(fake.target(), {});
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
      client->Prepare("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), {});
  ASSERT_TRUE(request.ok()) << request.status();
  std::optional<AsyncInferResult> result =
      testing::InferAsyncAndWait(*client, *request, absl::Seconds(30));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->status.ok()) << result->status;
  EXPECT_THAT(result->output_shape, ElementsAre(1, 1, 1, 1));
  EXPECT_EQ(fake.service.calls(), 2);
}

TEST(ClientFailureTest, OnlyOnceAndNotWithoutRetries) {
  FakeServer twice(/*failures=*/2);
  std::unique_ptr<Client> client = *Client::Create(twice.target(), {});
  absl::StatusOr<Tensor> out = client->Infer("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(twice.service.calls(), 2);

  FakeServer once(/*failures=*/1);
  ClientOptions no_retries;
  no_retries.max_attempts = 1;
  client = *Client::Create(once.target(), no_retries);
  out = client->Infer("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), {});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(once.service.calls(), 1);
}

TEST(ClientFailureTest, CreateRefusesHalfSetTls) {
  ClientOptions options;
  options.use_tls = true;
  options.client_cert_pem = "cert";
  EXPECT_EQ(Client::Create("localhost:1", options).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions plain;
  plain.root_certs_pem = "ca";
  EXPECT_EQ(Client::Create("localhost:1", plain).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Client::Create("", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sepconv::client
