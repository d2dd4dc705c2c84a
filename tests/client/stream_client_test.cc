// The client's ModelStreamInfer stream and `bench --streaming` against the
// real sepconv-server binary (a child process on free 127.0.0.1 ports, with
// a small per-stream bound so that the client outruns it).

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/bench.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"

namespace sepconv::client {
namespace {

constexpr int kServerBound = 4;

class StreamClientTest : public testing::SharedServerClientTest<StreamClientTest> {
 public:
  static std::vector<std::string> ServerFlags() {
    return {absl::StrCat("--stream_max_in_flight=", kServerBound)};
  }

 protected:
  std::shared_ptr<const PreparedRequest> Prepare(const std::string& model,
                                                 std::vector<int64_t> shape) {
    absl::StatusOr<Tensor> input = RandomTensor(shape, 7);
    EXPECT_TRUE(input.ok()) << input.status();
    absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
        client_->Prepare(model, "", *input, {});
    EXPECT_TRUE(request.ok()) << request.status();
    return *request;
  }
};

TEST_F(StreamClientTest, EveryRequestIsAnsweredInSendOrder) {
  absl::StatusOr<std::unique_ptr<InferStream>> stream = client_->OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  constexpr int kRequests = 120;  // far above the server's bound of 4
  absl::Mutex mu;
  std::vector<AsyncInferResult> results;
  for (int i = 0; i < kRequests; ++i) {
    (*stream)->Send(Prepare("sepconv", {1, 32, 4 + i % 9, 5}), [&](AsyncInferResult r) {
      absl::MutexLock lock(&mu);
      results.push_back(std::move(r));
    });
  }
  ASSERT_TRUE((*stream)->Close(absl::Seconds(60)).ok());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(results.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(results[i].status.ok()) << results[i].status;
    EXPECT_EQ(results[i].output_shape, (std::vector<int64_t>{1, 64, 4 + i % 9, 5}));
    EXPECT_EQ(results[i].output_bytes, 64 * (4 + i % 9) * 5 * 4);
  }
}

TEST_F(StreamClientTest, RefusedRequestsCarryTheirCodeAndTheStreamGoesOn) {
  absl::StatusOr<std::unique_ptr<InferStream>> stream = client_->OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  absl::Mutex mu;
  std::vector<absl::Status> statuses;
  auto record = [&](AsyncInferResult r) {
    absl::MutexLock lock(&mu);
    statuses.push_back(r.status);
  };
  (*stream)->Send(Prepare("no_such_model", {1, 32, 4, 4}), record);
  (*stream)->Send(Prepare("sepconv", {1, 16, 4, 4}), record);  // wrong channels
  (*stream)->Send(Prepare("sepconv", {1, 32, 4, 4}), record);
  ASSERT_TRUE((*stream)->Close(absl::Seconds(30)).ok());
  absl::MutexLock lock(&mu);
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kNotFound) << statuses[0];
  EXPECT_NE(statuses[0].message().find("no_such_model"), std::string::npos);
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kInvalidArgument) << statuses[1];
  EXPECT_TRUE(statuses[2].ok()) << statuses[2];
}

TEST_F(StreamClientTest, BenchStreamingSweepsAndTheServerCountsEveryRequest) {
  BenchOptions options;
  options.streaming = true;
  options.concurrency = {1, 8};  // 8 > the server's bound: the stream is throttled, not failed
  options.warmup = absl::Milliseconds(100);
  options.window = absl::Milliseconds(200);
  options.max_windows = 3;
  options.metrics_url = server_->metrics_url();
  options.model = "sepconv";
  absl::StatusOr<std::vector<StepResult>> results =
      RunBench({client_.get()}, Prepare("sepconv", {1, 32, 8, 8}), options);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  for (const StepResult& step : *results) {
    EXPECT_TRUE(step.errors.empty());
    EXPECT_GT(step.measured, 0);
    EXPECT_GT(step.infer_per_sec, 0);
    EXPECT_GT(step.p99_ms, 0);
    ASSERT_TRUE(step.has_server);
    EXPECT_EQ(step.server_requests, step.requests);
  }
}

}  // namespace
}  // namespace sepconv::client
