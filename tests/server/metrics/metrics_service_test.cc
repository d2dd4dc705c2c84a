// Real requests through the in-process server (gRPC over loopback, the real
// scheduler and engine) against the scrape of its metrics: every status the
// clients saw is counted once, and the samples, executions, batch sizes,
// queue/compute times and FLOPs add up to what was sent.

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/tensor.h"
#include "gtest/gtest.h"
#include "server/grpc/server.h"
#include "server/metrics/metrics.h"
#include "server/models/model_registry.h"
#include "tests/testing/engine_gate.h"
#include "tests/testing/exposition.h"
#include "tests/testing/http_get.h"

namespace sepconv {
namespace {

using testing::Exposition;
using testing::SampleLabels;

const SampleLabels kModel = {{"model", "sepconv"}, {"version", "1"}};

SampleLabels WithStatus(const std::string& status) {
  SampleLabels labels = kModel;
  labels["status"] = status;
  return labels;
}

std::string StatusLabel(absl::StatusCode code) {
  return code == absl::StatusCode::kOk ? "ok" : absl::StatusCodeToString(code);
}

class MetricsServiceTest : public ::testing::Test {
 protected:
  // The default model (32 -> 64, 3x3) with a queue of `max_queue_size`.
  void StartServer(int max_queue_size, std::function<void()> before_batch = nullptr) {
    metrics_ = Metrics::Create();
    ServerOptions options;
    options.address = "127.0.0.1";
    options.grpc_port = 0;
    options.metrics_port = 0;  // the test serves the registry itself (port 0 = any)
    options.threads = 1;
    options.scheduler.max_batch_size = 8;
    options.scheduler.max_queue_delay = absl::Microseconds(500);
    options.scheduler.max_queue_size = max_queue_size;
    options.scheduler.before_batch = std::move(before_batch);
    options.exit_timeout = absl::Seconds(10);
    auto registry = std::make_shared<ModelRegistry>();
    ASSERT_TRUE(AddDefaultModel(options, metrics_.get(), registry.get()).ok());
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(options, registry, metrics_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start("127.0.0.1", 0, metrics_->registry());
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
    client::ClientOptions client_options;
    client_options.default_deadline = absl::Seconds(30);
    absl::StatusOr<std::unique_ptr<client::Client>> c =
        client::Client::Create(absl::StrCat("127.0.0.1:", server_->grpc_port()), client_options);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }

  void TearDown() override {
    client_.reset();
    endpoint_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Now() + absl::Seconds(10));
  }

  // One blocking inference; records what the client saw.
  absl::StatusCode Infer(const std::string& model, const std::vector<int64_t>& shape) {
    absl::StatusOr<client::Tensor> input = client::RandomTensor(shape, 7);
    EXPECT_TRUE(input.ok());
    absl::StatusOr<client::Tensor> output = client_->Infer(model, "", *input, {});
    Saw(model, output.status().code(), shape);
    return output.status().code();
  }

  void Saw(const std::string& model, absl::StatusCode code, const std::vector<int64_t>& shape) {
    absl::MutexLock lock(&mu_);
    if (model != "sepconv") return;
    ++seen_[StatusLabel(code)];
    if (code == absl::StatusCode::kOk) {
      const int64_t positions = shape[0] * shape[2] * shape[3];
      samples_ += shape[0];
      flops_.depthwise += 2 * positions * 9 * 32;
      flops_.pointwise += 2 * positions * 32 * 64;
      flops_.standard += 2 * positions * 9 * 32 * 64;
    }
  }

  Exposition Scrape() {
    absl::StatusOr<testing::HttpResponse> response =
        testing::HttpGet(endpoint_->port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return Exposition();
    absl::StatusOr<Exposition> e = Exposition::Parse(response->body);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : Exposition();
  }

  // The scrape agrees with everything the clients saw.
  void ExpectScrapeMatchesWhatClientsSaw() {
    Exposition e = Scrape();
    absl::MutexLock lock(&mu_);
    double total = 0;
    for (const auto& [status, count] : seen_) {
      EXPECT_EQ(e.Value("sepconv_inference_requests_total", WithStatus(status)), count) << status;
      total += count;
    }
    EXPECT_EQ(e.Value("sepconv_request_duration_seconds_count", kModel), total);
    const double ok = seen_["ok"];
    EXPECT_EQ(e.Value("sepconv_inference_samples_total", kModel), samples_);
    EXPECT_EQ(e.Value("sepconv_batch_size_sum", kModel), samples_);
    const double executions = e.Value("sepconv_inference_executions_total", kModel).value_or(-1);
    EXPECT_GE(executions, 1);
    EXPECT_LE(executions, ok);  // batching merges requests, never splits them
    EXPECT_EQ(e.Value("sepconv_batch_size_count", kModel), executions);
    EXPECT_EQ(e.Value("sepconv_compute_duration_seconds_count", kModel), executions);
    EXPECT_EQ(e.Value("sepconv_queue_duration_seconds_count", kModel), ok);
    EXPECT_EQ(e.Value("sepconv_batch_delay_seconds_count", kModel), executions);
    EXPECT_EQ(e.Value("sepconv_overhead_duration_seconds_count", kModel), ok);
    EXPECT_EQ(e.Value("sepconv_flops_total",
                      {{"model", "sepconv"}, {"version", "1"}, {"op", "depthwise"}}),
              static_cast<double>(flops_.depthwise));
    EXPECT_EQ(e.Value("sepconv_flops_total",
                      {{"model", "sepconv"}, {"version", "1"}, {"op", "pointwise"}}),
              static_cast<double>(flops_.pointwise));
    EXPECT_EQ(e.Value("sepconv_standard_conv_flops_total", kModel),
              static_cast<double>(flops_.standard));
    EXPECT_EQ(e.Value("sepconv_pending_requests", kModel), 0);
    EXPECT_EQ(e.Value("sepconv_model_info", {{"model", "sepconv"},
                                             {"version", "1"},
                                             {"layers", "1"},
                                             {"in_channels", "32"},
                                             {"out_channels", "64"}}),
              1);
  }

  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
  std::unique_ptr<client::Client> client_;
  absl::Mutex mu_;
  std::map<std::string, double> seen_ ABSL_GUARDED_BY(mu_);
  double samples_ ABSL_GUARDED_BY(mu_) = 0;
  FlopCount flops_ ABSL_GUARDED_BY(mu_);
};

TEST_F(MetricsServiceTest, GoodAndInvalidRequests) {
  StartServer(/*max_queue_size=*/64);
  EXPECT_EQ(Infer("sepconv", {1, 32, 8, 8}), absl::StatusCode::kOk);
  EXPECT_EQ(Infer("sepconv", {3, 32, 8, 8}), absl::StatusCode::kOk);
  EXPECT_EQ(Infer("sepconv", {2, 32, 5, 7}), absl::StatusCode::kOk);
  EXPECT_EQ(Infer("sepconv", {1, 3, 8, 8}), absl::StatusCode::kInvalidArgument);  // channels
  EXPECT_EQ(Infer("sepconv", {1, 32, 8}), absl::StatusCode::kInvalidArgument);    // rank
  // An unknown model has no series of its own and changes none of sepconv's.
  EXPECT_EQ(Infer("nope", {1, 32, 8, 8}), absl::StatusCode::kNotFound);
  ExpectScrapeMatchesWhatClientsSaw();
  Exposition e = Scrape();
  EXPECT_EQ(e.Value("sepconv_inference_requests_total", WithStatus("ok")), 3);
  EXPECT_EQ(e.Value("sepconv_inference_requests_total", WithStatus("INVALID_ARGUMENT")), 2);
  EXPECT_EQ(e.Value("sepconv_inference_samples_total", kModel), 6);
  EXPECT_FALSE(e.Value("sepconv_inference_requests_total",
                       {{"model", "nope"}, {"version", ""}, {"status", "NOT_FOUND"}})
                   .has_value());
}

TEST_F(MetricsServiceTest, ConcurrentLoadWithQueueFullRejections) {
  // A queue of 2 behind an engine held at a gate on one request: of 64
  // requests sent at once, 2 are queued and 62 refused as queue-full, on any
  // CPU; then the gate opens. The scrape must match what the clients saw.
  testing::EngineGate gate;
  StartServer(/*max_queue_size=*/2, gate.Hook());
  const std::vector<int64_t> shape = {1, 32, 64, 64};
  absl::StatusOr<client::Tensor> input = client::RandomTensor(shape, 3);
  ASSERT_TRUE(input.ok());
  absl::StatusOr<std::shared_ptr<const client::PreparedRequest>> request =
      client_->Prepare("sepconv", "", *input, {});
  ASSERT_TRUE(request.ok()) << request.status();
  constexpr int kRequests = 64;
  absl::BlockingCounter done(kRequests + 1);
  auto saw = [&](client::AsyncInferResult result) {
    Saw("sepconv", result.status.code(), shape);
    done.DecrementCount();
  };
  gate.Close();
  client_->InferAsync(*request, absl::Seconds(60), saw);  // parks the worker
  ASSERT_TRUE(gate.WaitParked().ok());
  for (int i = 0; i < kRequests; ++i) client_->InferAsync(*request, absl::Seconds(60), saw);
  for (const absl::Time give_up = absl::Now() + absl::Seconds(60);;
       absl::SleepFor(absl::Milliseconds(1))) {
    absl::MutexLock lock(&mu_);
    if (seen_["RESOURCE_EXHAUSTED"] == kRequests - 2 || absl::Now() > give_up) break;
  }
  gate.Open();
  done.Wait();
  {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(seen_["ok"], 3);
    EXPECT_EQ(seen_["RESOURCE_EXHAUSTED"], kRequests - 2);
  }
  ExpectScrapeMatchesWhatClientsSaw();
}

}  // namespace
}  // namespace sepconv
