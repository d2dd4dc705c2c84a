// Fault tests of the real sepconv-server binary over 127.0.0.1: clients that
// cancel mid-flight, disconnect with requests queued, send past their
// deadline, or open many connections at once. After each the next good
// request is answered correctly and sepconv_pending_requests returns to 0;
// the server finally exits 0 on SIGTERM (under ASan: LeakSanitizer clean).
//
// `fault_test --flood_client=HOST:PORT` is a helper mode: it floods the
// server with requests and never returns, so a test can SIGKILL it (a real
// disconnect with requests queued).

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/security/sepconv_requests.h"

namespace sepconv::testing {
namespace {

const char kServerBinary[] = SEPCONV_SERVER_BINARY;
std::string self_path;  // argv[0], for the flood client

// Outstanding async calls of one test, completed on gRPC threads.
class AsyncCalls {
 public:
  struct Call {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    grpc::Status status;
  };
  explicit AsyncCalls(std::shared_ptr<grpc::Channel> channel)
      : stub_(inference::GRPCInferenceService::NewStub(channel)) {}
  ~AsyncCalls() { WaitAll(absl::Seconds(60)); }

  Call* Send(const inference::ModelInferRequest& request, absl::Duration deadline) {
    auto call = std::make_unique<Call>();
    Call* raw = call.get();
    raw->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(std::move(call));
      ++outstanding_;
    }
    stub_->async()->ModelInfer(&raw->context, &request, &raw->response,
                               [this, raw](grpc::Status status) {
                                 absl::MutexLock lock(&mu_);
                                 raw->status = std::move(status);
                                 --outstanding_;
                               });
    return raw;
  }
  bool WaitAll(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  std::vector<grpc::StatusCode> Codes() {
    absl::MutexLock lock(&mu_);
    std::vector<grpc::StatusCode> codes;
    for (const auto& call : calls_) codes.push_back(call->status.error_code());
    return codes;
  }

 private:
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One engine worker, one thread, small queue delay: requests do queue.
    auto server = ServerProcess::Start(
        kServerBinary, {"--max_batch_size=4", "--instances=1", "--max_queue_size=256"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    if (server_ == nullptr) return;
    EXPECT_TRUE(server_->Signal(SIGTERM).ok());
    absl::StatusOr<int> code = server_->Wait(absl::Seconds(60));
    EXPECT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(code.value_or(-1), 0) << server_->Log();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  // The server is healthy: a good request is answered correctly and nothing
  // is left pending.
  void ExpectHealthy() {
    auto stub = inference::GRPCInferenceService::NewStub(ChannelTo(server_->target(), nullptr, 1));
    const inference::ModelInferRequest request = MakeRequest(2, 9, 7, 99);
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status status = stub->ModelInfer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    absl::StatusOr<std::vector<float>> expected = ExpectedOutput(request);
    ASSERT_TRUE(expected.ok()) << expected.status();
    absl::Status checked = CheckResponse(response, *expected);
    EXPECT_TRUE(checked.ok()) << checked;
    absl::Status pending = WaitPendingZero(*server_);
    EXPECT_TRUE(pending.ok()) << pending;
    EXPECT_TRUE(server_->running());
  }

  static ServerProcess* server_;
};
ServerProcess* FaultTest::server_ = nullptr;

TEST_F(FaultTest, ClientsCancelMidFlight) {
  // Work queued ahead (one engine worker) keeps the small requests queued
  // while they are cancelled, however fast the machine: they are cancelled
  // only once the server counts them pending, behind ~100x their work.
  AsyncCalls blockers(ChannelTo(server_->target(), nullptr, 10));
  const inference::ModelInferRequest big = MakeRequest(1, 112, 112, 2);
  for (int i = 0; i < 32; ++i) blockers.Send(big, absl::Seconds(60));
  const inference::ModelInferRequest request = MakeRequest(1, 28, 28, 1);
  AsyncCalls calls(ChannelTo(server_->target(), nullptr, 10));
  std::vector<AsyncCalls::Call*> sent;
  for (int i = 0; i < 48; ++i) sent.push_back(calls.Send(request, absl::Seconds(60)));
  double pending = 0;
  for (const absl::Time give_up = absl::Now() + absl::Seconds(20);
       pending < 48 && absl::Now() < give_up;) {
    pending = server_->Metric("sepconv_pending_requests", {{"model", "sepconv"}, {"version", "1"}})
                  .value_or(0);
    if (pending < 48) absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_GE(pending, 48);
  for (AsyncCalls::Call* call : sent) call->context.TryCancel();
  ASSERT_TRUE(calls.WaitAll(absl::Seconds(60)));
  ASSERT_TRUE(blockers.WaitAll(absl::Seconds(60)));
  int cancelled = 0;
  for (grpc::StatusCode code : calls.Codes()) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::CANCELLED) << code;
    cancelled += code == grpc::StatusCode::CANCELLED;
  }
  EXPECT_GT(cancelled, 0);
  for (grpc::StatusCode code : blockers.Codes()) EXPECT_EQ(code, grpc::StatusCode::OK);
  ExpectHealthy();
}

TEST_F(FaultTest, ClientDisconnectsWithRequestsQueued) {
  for (int round = 0; round < 3; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const std::string arg = "--flood_client=" + server_->target();
      execl(self_path.c_str(), self_path.c_str(), arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Let it fill the queue, then kill it: the kernel closes its connection.
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    double pending = 0;
    while (absl::Now() < give_up && pending < 8) {
      pending =
          server_->Metric("sepconv_pending_requests", {{"model", "sepconv"}, {"version", "1"}})
              .value_or(0);
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_GE(pending, 8) << "the flood client never got requests queued";
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ExpectHealthy();
  }
}

TEST_F(FaultTest, RequestsPastTheirDeadline) {
  const inference::ModelInferRequest big = MakeRequest(4, 56, 56, 2);
  inference::ModelInferRequest with_timeout = MakeRequest(1, 56, 56, 3);
  (*with_timeout.mutable_parameters())["timeout"].set_int64_param(1);  // 1 us
  AsyncCalls calls(ChannelTo(server_->target(), nullptr, 11));
  for (int i = 0; i < 16; ++i) {
    calls.Send(big, absl::Milliseconds(2));
    calls.Send(with_timeout, absl::Seconds(30));
  }
  ASSERT_TRUE(calls.WaitAll(absl::Seconds(60)));
  int expired = 0;
  for (grpc::StatusCode code : calls.Codes()) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::DEADLINE_EXCEEDED)
        << code;
    expired += code == grpc::StatusCode::DEADLINE_EXCEEDED;
  }
  EXPECT_GT(expired, 16);
  ExpectHealthy();
}

TEST_F(FaultTest, ManyConnectionsAtOnce) {
  const double fds_before = server_->Metric("process_open_fds", {}).value_or(0);
  constexpr int kConnections = 128;
  const inference::ModelInferRequest request = MakeRequest(1, 8, 8, 5);
  std::vector<std::unique_ptr<AsyncCalls>> calls;
  absl::StatusOr<std::vector<float>> expected = ExpectedOutput(request);
  ASSERT_TRUE(expected.ok());
  std::vector<AsyncCalls::Call*> sent;
  for (int i = 0; i < kConnections; ++i) {
    calls.push_back(std::make_unique<AsyncCalls>(ChannelTo(server_->target(), nullptr, 100 + i)));
    sent.push_back(calls.back()->Send(request, absl::Seconds(60)));
  }
  for (auto& c : calls) ASSERT_TRUE(c->WaitAll(absl::Seconds(90)));
  for (AsyncCalls::Call* call : sent) {
    ASSERT_TRUE(call->status.ok()) << call->status.error_message();
    EXPECT_TRUE(CheckResponse(call->response, *expected).ok());
  }
  calls.clear();  // closes every connection
  ExpectHealthy();
  // The server let go of the connections' descriptors.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  double fds = 0;
  do {
    absl::SleepFor(absl::Milliseconds(100));
    fds = server_->Metric("process_open_fds", {}).value_or(0);
  } while (fds > fds_before + 8 && absl::Now() < give_up);
  EXPECT_LE(fds, fds_before + 8);
}

// Helper mode: keeps kInFlight requests outstanding, forever, so the
// server's queue stays full however fast it computes.
int FloodClient(const std::string& target) {
  constexpr int kInFlight = 64;
  auto stub = inference::GRPCInferenceService::NewStub(ChannelTo(target, nullptr, 12345));
  const inference::ModelInferRequest request = MakeRequest(1, 8, 8, 4);
  std::atomic<int> outstanding{0};
  for (;;) {
    while (outstanding.load() < kInFlight) {
      struct Call {
        grpc::ClientContext context;
        inference::ModelInferResponse response;
      };
      auto* call = new Call;
      call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(600)));
      ++outstanding;
      stub->async()->ModelInfer(&call->context, &request, &call->response,
                                [call, &outstanding](grpc::Status) {
                                  delete call;
                                  --outstanding;
                                });
    }
    absl::SleepFor(absl::Microseconds(200));
  }
}

}  // namespace
}  // namespace sepconv::testing

int main(int argc, char** argv) {
  constexpr char kFlood[] = "--flood_client=";
  if (argc == 2 && std::strncmp(argv[1], kFlood, sizeof(kFlood) - 1) == 0) {
    return sepconv::testing::FloodClient(argv[1] + sizeof(kFlood) - 1);
  }
  char self[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  sepconv::testing::self_path = n > 0 ? std::string(self, n) : std::string(argv[0]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
