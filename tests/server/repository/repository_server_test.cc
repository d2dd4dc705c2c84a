// The model repository behind a real in-process server over 127.0.0.1
// (through the server's RepositorySync, as sepconv-server wires it):
// repository models served over gRPC next to failures that show as not
// ready with their reason, and poll mode picking up a new version while a
// client keeps getting (correct) answers.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/models/repository_sync.h"
#include "server_test_util.h"
#include "tests/engine/loader/onnx_test_graph.h"
#include "tests/server/repository/seeded_graph.h"
#include "tests/testing/exposition.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_onnx::TestGraph;

constexpr int64_t kChannels = 32;  // what MakeInferRequest's callers send

TestGraph SeededGraph(uint32_t seed) {
  return testing::SeededGraph(seed, {kChannels, 16, /*batch_norm=*/true, /*relu=*/true});
}

class RepositoryServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("m/1/model.onnx", SeededGraph(1).Serialize());
    TestGraph pool(kChannels);
    pool.Node("MaxPool", {pool.current()});
    pool.Finish();
    Write("bad/1/model.onnx", pool.Serialize());
    server_ = std::make_unique<testing::TestServer>();
  }
  void TearDown() override {
    if (sync_) sync_->Stop();
    sync_.reset();
    server_.reset();
  }

  void Write(const std::string& relative, const std::string& bytes) {
    tree_.Write(relative, bytes);
  }

  void StartSync(absl::Duration interval) {
    ServerOptions options = testing::TestServer::DefaultOptions();
    options.scheduler.max_batch_size = 4;
    options.scheduler.max_queue_delay = absl::Microseconds(100);
    options.exit_timeout = absl::Seconds(5);
    // The TestServer owns the registry and outlives the sync.
    std::shared_ptr<ModelRegistry> registry(std::shared_ptr<void>(), &server_->registry());
    absl::StatusOr<std::unique_ptr<RepositorySync>> sync =
        RepositorySync::Start(root_.string(), options, &server_->metrics(), registry, interval);
    ASSERT_TRUE(sync.ok()) << sync.status();
    sync_ = *std::move(sync);
  }

  // Infers on `model`/`version`; returns the status and fills `out`/`served`.
  grpc::Status Infer(inference::GRPCInferenceService::Stub& stub, const std::string& model,
                     const std::string& version, const Dims4& dims, const std::vector<float>& x,
                     std::vector<float>* out, std::string* served) {
    inference::ModelInferRequest request = testing::MakeInferRequest(model, dims, x, true);
    request.set_model_version(version);
    inference::ModelInferResponse response;
    auto context = testing::ContextWithDeadline(30);
    grpc::Status status = stub.ModelInfer(context.get(), request, &response);
    if (status.ok()) {
      *out = testing::OutputFloats(response);
      *served = response.model_version();
    }
    return status;
  }

  // Expects version 1 of model `m` to answer a random input of `dims` (from
  // `input_seed`) as SeededGraph(1) does.
  void ExpectVersionOneAnswers(const Dims4& dims, uint64_t input_seed) {
    auto stub = server_->NewStub();
    const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), input_seed);
    std::vector<float> out;
    std::string served;
    grpc::Status status = Infer(*stub, "m", "1", dims, x, &out, &served);
    ASSERT_TRUE(status.ok()) << status.error_message();
    Dims4 want_dims;
    EXPECT_LE(testing::MaxRelativeError(out, SeededGraph(1).Evaluate(dims, x, &want_dims)), 1e-4);
  }

  testing::TempTree tree_{"repo_server_"};
  const fs::path& root_ = tree_.path();
  std::unique_ptr<testing::TestServer> server_;
  std::unique_ptr<RepositorySync> sync_;
};

TEST_F(RepositoryServerTest, ServesGoodModelsAndShowsBadOnesNotReady) {
  StartSync(absl::ZeroDuration());
  const Dims4 dims{2, kChannels, 9, 7};
  ExpectVersionOneAnswers(dims, 5);

  auto stub = server_->NewStub();
  {
    inference::ModelReadyRequest request;
    request.set_name("bad");
    inference::ModelReadyResponse response;
    auto context = testing::ContextWithDeadline(10);
    ASSERT_TRUE(stub->ModelReady(context.get(), request, &response).ok());
    EXPECT_FALSE(response.ready());
  }
  const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), 5);
  std::vector<float> out;
  std::string served;
  grpc::Status status = Infer(*stub, "bad", "", dims, x, &out, &served);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("MaxPool"));
  EXPECT_THAT(status.error_message(), HasSubstr("unsupported operator"));
  // The built-in model is untouched by the repository.
  EXPECT_TRUE(server_->registry().IsReady("sepconv", ""));
}

TEST_F(RepositoryServerTest, PollPicksUpANewVersionWhileClientsKeepGettingAnswers) {
  StartSync(absl::Milliseconds(100));
  const Dims4 dims{1, kChannels, 8, 8};
  const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), 9);
  Dims4 want_dims;
  const std::vector<float> want1 = SeededGraph(1).Evaluate(dims, x, &want_dims);
  const std::vector<float> want2 = SeededGraph(2).Evaluate(dims, x, &want_dims);
  ASSERT_GT(testing::MaxRelativeError(want1, want2), 1e-2);  // the versions differ

  std::atomic<bool> saw_v2{false};
  std::atomic<int> answers{0}, failures{0}, wrong{0};
  std::thread client([&] {
    auto stub = server_->NewStub();
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (absl::Now() < give_up) {
      std::vector<float> out;
      std::string served;
      grpc::Status status = Infer(*stub, "m", "", dims, x, &out, &served);
      if (!status.ok()) {
        ++failures;
        continue;
      }
      ++answers;
      const std::vector<float>& want = served == "2" ? want2 : want1;
      if (testing::MaxRelativeError(out, want) > 1e-4) ++wrong;
      if (served == "2" && answers > 20) {
        saw_v2 = true;
        return;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(300));  // answers from version 1 first
  // A version folder that appears before its model file (as a copy in
  // progress does) must not interrupt version 1.
  fs::create_directories(root_ / "m" / "2");
  absl::SleepFor(absl::Milliseconds(300));
  Write("m/2/model.onnx", SeededGraph(2).Serialize());
  client.join();
  EXPECT_TRUE(saw_v2);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(answers, 20);
  // Latest-1 policy: version 1 is unloaded. The sync adds version 2 before it
  // removes version 1, and the client stops at version 2's first answer, so
  // wait for the removal (bounded).
  absl::StatusCode v1 = absl::StatusCode::kOk;
  for (int i = 0; i < 600 && v1 != absl::StatusCode::kNotFound; ++i) {  // 30 s hang guard
    v1 = server_->registry().Find("m", "1").status().code();
    if (v1 != absl::StatusCode::kNotFound) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(v1, absl::StatusCode::kNotFound);
}

// The /metrics exposition (the registry the endpoint serves) before and
// after poll mode replaces version 1 by version 2.
TEST_F(RepositoryServerTest, ReplacedVersionLeavesTheMetrics) {
  StartSync(absl::ZeroDuration());
  auto scrape = [this] {
    std::ostringstream text;
    prometheus::TextSerializer().Serialize(text, server_->metrics().registry()->Collect());
    absl::StatusOr<testing::Exposition> parsed = testing::Exposition::Parse(text.str());
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? *std::move(parsed) : testing::Exposition();
  };
  const testing::SampleLabels v1 = {{"model", "m"}, {"version", "1"}};
  const testing::SampleLabels v2 = {{"model", "m"}, {"version", "2"}};
  auto info = [](testing::SampleLabels labels) {
    labels.insert({{"layers", "1"}, {"in_channels", "32"}, {"out_channels", "16"}});
    return labels;
  };
  const Dims4 dims{1, kChannels, 8, 8};
  const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), 3);
  auto stub = server_->NewStub();
  std::vector<float> out;
  std::string served;
  ASSERT_TRUE(Infer(*stub, "m", "", dims, x, &out, &served).ok());
  ASSERT_EQ(served, "1");

  testing::Exposition before = scrape();
  const int series = before.CountMatching(v1);
  EXPECT_GT(series, 0);
  EXPECT_EQ(before.Value("sepconv_model_info", info(v1)), 1);
  EXPECT_EQ(before.Value("sepconv_inference_requests_total",
                         {{"model", "m"}, {"version", "1"}, {"status", "ok"}}),
            1);
  EXPECT_EQ(before.CountMatching(v2), 0);

  Write("m/2/model.onnx", SeededGraph(2).Serialize());
  EXPECT_TRUE(sync_->PollOnce().ok());  // m/2 loads and replaces m/1
  ASSERT_TRUE(Infer(*stub, "m", "", dims, x, &out, &served).ok());
  ASSERT_EQ(served, "2");

  testing::Exposition after = scrape();
  EXPECT_EQ(after.CountMatching(v1), 0);
  EXPECT_FALSE(after.Value("sepconv_model_info", info(v1)).has_value());
  EXPECT_EQ(after.CountMatching(v2), series);
  EXPECT_EQ(after.Value("sepconv_model_info", info(v2)), 1);
  EXPECT_EQ(after.Value("sepconv_inference_requests_total",
                        {{"model", "m"}, {"version", "2"}, {"status", "ok"}}),
            1);
}

TEST_F(RepositoryServerTest, ABrokenRewriteKeepsServingThePreviousLoad) {
  StartSync(absl::ZeroDuration());
  const std::string good = SeededGraph(1).Serialize();
  Write("m/1/model.onnx", good.substr(0, good.size() / 2));  // truncated in place
  // The rewrite is seen and fails (PollOnce returns the first failure) ...
  EXPECT_THAT(std::string(sync_->PollOnce().message()), HasSubstr("truncated"));
  // ... while version 1 keeps answering from its previous load.
  ExpectVersionOneAnswers({1, kChannels, 6, 6}, 2);
}

}  // namespace
}  // namespace sepconv
