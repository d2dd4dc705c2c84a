// ModelStreamInfer over 127.0.0.1: hundreds of requests on one stream equal
// to their unary answers, errors carried in error_message with the stream
// staying open, the token checked per stream, the per-stream in-flight bound,
// cancellation mid-stream and shutdown with a stream open.

#include "server/grpc/stream_infer.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/random_model.h"
#include "server/models/served_model.h"
#include "server_test_util.h"

namespace sepconv {
namespace {

using testing::ContextWithDeadline;
using testing::Elements;
using testing::MakeInferRequest;
using testing::OutputFloats;
using testing::RandomTensor;
using testing::TestServer;

using Stream =
    grpc::ClientReaderWriter<inference::ModelInferRequest, inference::ModelStreamInferResponse>;

// Holds every job until Release(); afterwards completes jobs at once
// (output all 1.0). Cancel finishes a held job CANCELLED at once, as the real
// scheduler does with a queued one. Records the most jobs it ever held.
class HoldingScheduler : public Scheduler {
 public:
  absl::Status Submit(std::unique_ptr<InferenceJob> job) override {
    absl::MutexLock lock(&mu_);
    if (!released_) {
      held_.push_back(std::move(job));
      max_held_ = std::max<int64_t>(max_held_, held_.size());
      return absl::OkStatus();
    }
    std::vector<std::unique_ptr<InferenceJob>> one;
    one.push_back(std::move(job));
    mu_.Unlock();
    Complete(one);
    mu_.Lock();
    return absl::OkStatus();
  }
  void Shutdown(absl::Time) override { Release(); }
  void Cancel(uint64_t id) override {
    std::unique_ptr<InferenceJob> cancelled;
    {
      absl::MutexLock lock(&mu_);
      auto it =
          std::find_if(held_.begin(), held_.end(), [id](const auto& job) { return job->id == id; });
      if (it == held_.end()) return;
      cancelled = std::move(*it);
      held_.erase(it);
      ++cancelled_seen_;
    }
    cancelled->done(absl::CancelledError("cancelled"));
  }
  int64_t queued() const override {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(held_.size());
  }
  int64_t max_held() const {
    absl::MutexLock lock(&mu_);
    return max_held_;
  }
  int cancelled_seen() const {
    absl::MutexLock lock(&mu_);
    return cancelled_seen_;
  }
  void Release() {
    std::vector<std::unique_ptr<InferenceJob>> jobs;
    {
      absl::MutexLock lock(&mu_);
      released_ = true;
      jobs.swap(held_);
    }
    Complete(jobs);
  }
  // Whether `n` held jobs were cancelled, waiting up to 10 s.
  bool WaitCancelled(int n) const {
    for (int i = 0; i < 2000 && cancelled_seen() < n; ++i) absl::SleepFor(absl::Milliseconds(5));
    return cancelled_seen() >= n;
  }
  bool WaitHeld(int64_t n) const {
    for (int i = 0; i < 2000 && queued() < n; ++i) absl::SleepFor(absl::Milliseconds(5));
    return queued() >= n;
  }

 private:
  static void Complete(std::vector<std::unique_ptr<InferenceJob>>& jobs) {
    for (auto& job : jobs) {
      std::fill(job->output, job->output + 64 * job->dims.n * job->dims.h * job->dims.w, 1.0f);
      job->done(absl::OkStatus());
    }
  }

  mutable absl::Mutex mu_;
  bool released_ = false;
  int64_t max_held_ = 0;
  int cancelled_seen_ = 0;
  std::vector<std::unique_ptr<InferenceJob>> held_;
};

constexpr char kHeld[] = "held";

HoldingScheduler* AddHeldModel(TestServer& server) {
  auto owned = std::make_unique<HoldingScheduler>();
  HoldingScheduler* scheduler = owned.get();
  server.registry().AddOrReplace(std::make_shared<ServedModel>(
      kHeld, "1", std::make_shared<const ModelSpec>(DefaultModel()), std::move(owned), nullptr));
  return scheduler;
}

ServerOptions WithStreamBound(int bound) {
  ServerOptions options = TestServer::DefaultOptions();
  options.service.stream_max_in_flight = bound;
  return options;
}

inference::ModelInferRequest Request(const std::string& model, const Dims4& dims, uint64_t seed,
                                     bool raw = true) {
  inference::ModelInferRequest request =
      MakeInferRequest(model, dims, RandomTensor(Elements(dims), seed), raw);
  request.set_id(absl::StrCat("req-", seed));
  return request;
}

// Writes `requests` from a thread (then half-closes) while this thread reads
// every answer; returns the answers and the stream's final status.
grpc::Status RunStream(inference::GRPCInferenceService::Stub& stub,
                       const std::vector<inference::ModelInferRequest>& requests,
                       std::vector<inference::ModelStreamInferResponse>* answers,
                       grpc::ClientContext* context) {
  std::unique_ptr<Stream> stream = stub.ModelStreamInfer(context);
  std::thread writer([&] {
    for (const auto& request : requests) {
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });
  inference::ModelStreamInferResponse answer;
  while (stream->Read(&answer)) answers->push_back(answer);
  writer.join();
  return stream->Finish();
}

TEST(StreamInferTest, HundredsOfRequestsMatchUnaryAnswersBitForBitInOrder) {
  TestServer server;
  auto stub = server.NewStub();
  const std::vector<Dims4> shapes = {{1, 32, 8, 8}, {2, 32, 5, 7}, {1, 32, 1, 1}, {3, 32, 6, 4}};
  std::vector<inference::ModelInferRequest> requests;
  for (int i = 0; i < 320; ++i) {
    requests.push_back(Request("sepconv", shapes[i % shapes.size()], 1000 + i, i % 5 != 0));
  }
  std::vector<inference::ModelStreamInferResponse> answers;
  auto context = ContextWithDeadline(120);
  grpc::Status status = RunStream(*stub, requests, &answers, context.get());
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answers.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(requests[i].id());
    ASSERT_EQ(answers[i].error_message(), "");
    const inference::ModelInferResponse& streamed = answers[i].infer_response();
    EXPECT_EQ(streamed.id(), requests[i].id());
    inference::ModelInferResponse unary;
    auto unary_context = ContextWithDeadline();
    ASSERT_TRUE(stub->ModelInfer(unary_context.get(), requests[i], &unary).ok());
    EXPECT_EQ(streamed.raw_output_contents_size(), unary.raw_output_contents_size());
    EXPECT_EQ(streamed.outputs(0).shape().size(), 4);
    EXPECT_TRUE(std::equal(streamed.outputs(0).shape().begin(), streamed.outputs(0).shape().end(),
                           unary.outputs(0).shape().begin()));
    const std::vector<float> a = OutputFloats(streamed);
    const std::vector<float> b = OutputFloats(unary);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
  EXPECT_GE(server.RequestCount("ok"), 2.0 * requests.size());
}

TEST(StreamInferTest, ErrorsTravelInErrorMessageAndTheStreamStaysOpen) {
  TestServer server;
  auto stub = server.NewStub();
  std::vector<inference::ModelInferRequest> requests;
  requests.push_back(Request("sepconv", {1, 32, 4, 4}, 1));
  requests.push_back(Request("sepconv", {1, 31, 4, 4}, 2));  // wrong channel count
  requests.push_back(Request("no_such_model", {1, 32, 4, 4}, 3));
  requests.push_back(Request("sepconv", {1, 32, 4, 4}, 4, /*raw=*/false));
  inference::ModelInferRequest unknown_version = Request("sepconv", {1, 32, 4, 4}, 5);
  unknown_version.set_model_version("7");
  requests.push_back(unknown_version);
  requests.push_back(Request("sepconv", {2, 32, 3, 3}, 6));
  const double invalid_before = server.RequestCount("INVALID_ARGUMENT");

  std::vector<inference::ModelStreamInferResponse> answers;
  auto context = ContextWithDeadline(60);
  grpc::Status status = RunStream(*stub, requests, &answers, context.get());
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answers.size(), requests.size());
  const std::vector<std::string> expected = {
      "", "INVALID_ARGUMENT: ", "NOT_FOUND: ", "", "NOT_FOUND: ", ""};
  for (size_t i = 0; i < answers.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(answers[i].infer_response().id(), requests[i].id());
    if (expected[i].empty()) {
      EXPECT_EQ(answers[i].error_message(), "");
      EXPECT_FALSE(OutputFloats(answers[i].infer_response()).empty());
    } else {
      EXPECT_TRUE(absl::StartsWith(answers[i].error_message(), expected[i]))
          << answers[i].error_message();
    }
  }
  EXPECT_NE(answers[1].error_message().find("31"), std::string::npos) << answers[1].error_message();
  EXPECT_NE(answers[2].error_message().find("no_such_model"), std::string::npos);
  // Typed request, typed answer (same path as unary).
  EXPECT_EQ(answers[3].infer_response().raw_output_contents_size(), 0);
  EXPECT_EQ(server.RequestCount("INVALID_ARGUMENT") - invalid_before, 1);
}

TEST(StreamInferTest, TokenIsCheckedPerStreamAndEachRequestCarriesTheRefusal) {
  absl::StatusOr<ServerOptions> options =
      testing::WithTokens(TestServer::DefaultOptions(), {"stream-token"});
  ASSERT_TRUE(options.ok()) << options.status();
  TestServer server(*options);
  auto stub = server.NewStub();
  const std::vector<inference::ModelInferRequest> requests = {Request("sepconv", {1, 32, 4, 4}, 1),
                                                              Request("sepconv", {1, 32, 4, 4}, 2)};
  const double refused_before = server.RequestCount("UNAUTHENTICATED");

  for (const std::string& header : {std::string(), std::string("Bearer wrong")}) {
    std::vector<inference::ModelStreamInferResponse> answers;
    auto context = ContextWithDeadline(30);
    if (!header.empty()) context->AddMetadata("authorization", header);
    ASSERT_TRUE(RunStream(*stub, requests, &answers, context.get()).ok());
    ASSERT_EQ(answers.size(), 2u);
    for (const auto& answer : answers) {
      EXPECT_TRUE(absl::StartsWith(answer.error_message(), "UNAUTHENTICATED: "))
          << answer.error_message();
      EXPECT_EQ(answer.infer_response().outputs_size(), 0);
    }
  }
  EXPECT_EQ(server.RequestCount("UNAUTHENTICATED") - refused_before, 4);

  std::vector<inference::ModelStreamInferResponse> answers;
  auto context = ContextWithDeadline(30);
  context->AddMetadata("authorization", "Bearer stream-token");
  ASSERT_TRUE(RunStream(*stub, requests, &answers, context.get()).ok());
  ASSERT_EQ(answers.size(), 2u);
  for (const auto& answer : answers) EXPECT_EQ(answer.error_message(), "");
}

TEST(StreamInferTest, FastSenderIsHeldAtTheInFlightBoundAndTheStreamCompletes) {
  constexpr int kBound = 4;
  constexpr int kRequests = 200;
  TestServer server(WithStreamBound(kBound));
  HoldingScheduler* held = AddHeldModel(server);
  auto stub = server.NewStub();
  auto context = ContextWithDeadline(120);
  std::unique_ptr<Stream> stream = stub->ModelStreamInfer(context.get());
  std::thread writer([&] {
    // 200 x 32 KiB: far more than the server may hold for one stream.
    for (int i = 0; i < kRequests; ++i) {
      if (!stream->Write(Request(kHeld, {1, 32, 16, 16}, i))) break;
    }
    stream->WritesDone();
  });
  // Nothing is answered while the scheduler holds the jobs: the server reads
  // exactly up to the bound and then waits.
  ASSERT_TRUE(held->WaitHeld(kBound));
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(held->queued(), kBound);
  EXPECT_EQ(held->max_held(), kBound);

  held->Release();
  int answered = 0;
  inference::ModelStreamInferResponse answer;
  while (stream->Read(&answer)) {
    EXPECT_EQ(answer.error_message(), "");
    EXPECT_EQ(answer.infer_response().id(), absl::StrCat("req-", answered));
    ++answered;
  }
  writer.join();
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(answered, kRequests);
  EXPECT_EQ(held->max_held(), kBound);
}

TEST(StreamInferTest, ClientCancelMidStreamDropsHeldJobsAndTheServerKeepsServing) {
  constexpr int kBound = 4;
  TestServer server(WithStreamBound(kBound));
  HoldingScheduler* held = AddHeldModel(server);
  auto stub = server.NewStub();
  {
    auto context = ContextWithDeadline(60);
    std::unique_ptr<Stream> stream = stub->ModelStreamInfer(context.get());
    std::thread writer([&] {
      for (int i = 0; i < 10; ++i) {
        if (!stream->Write(Request(kHeld, {1, 32, 4, 4}, i))) break;
      }
    });
    ASSERT_TRUE(held->WaitHeld(kBound));
    context->TryCancel();
    writer.join();
    inference::ModelStreamInferResponse answer;
    while (stream->Read(&answer)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server turned the cancel into Scheduler::Cancel of every held job;
  // nothing is left to run against the stream that is gone.
  ASSERT_TRUE(held->WaitCancelled(kBound));
  EXPECT_EQ(held->queued(), 0);
  held->Release();
  EXPECT_EQ(held->cancelled_seen(), kBound);

  // Unary and a fresh stream still work.
  inference::ModelInferResponse unary;
  auto unary_context = ContextWithDeadline();
  ASSERT_TRUE(
      stub->ModelInfer(unary_context.get(), Request("sepconv", {1, 32, 4, 4}, 9), &unary).ok());
  std::vector<inference::ModelStreamInferResponse> answers;
  auto context = ContextWithDeadline(30);
  ASSERT_TRUE(
      RunStream(*stub, {Request("sepconv", {1, 32, 4, 4}, 10)}, &answers, context.get()).ok());
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].error_message(), "");
}

TEST(StreamInferTest, ShutdownEndsAnOpenStreamUnavailable) {
  TestServer server;
  auto stub = server.NewStub();
  auto context = ContextWithDeadline(60);
  std::unique_ptr<Stream> stream = stub->ModelStreamInfer(context.get());
  ASSERT_TRUE(stream->Write(Request("sepconv", {1, 32, 4, 4}, 1)));
  inference::ModelStreamInferResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_EQ(answer.error_message(), "");

  // The stream stays open (no half-close) while the server shuts down.
  const absl::Time start = absl::Now();
  std::thread shutdown([&] { server.server().Shutdown(absl::Now() + absl::Seconds(30)); });
  EXPECT_FALSE(stream->Read(&answer));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  shutdown.join();
  // Ended by the server, not by gRPC's deadline cancelling the call.
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

}  // namespace
}  // namespace sepconv
