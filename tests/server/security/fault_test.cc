// Fault tests of the real server over 127.0.0.1 (its test build, whose engine
// a test can hold: tests/testing/engine_gate.h): clients that cancel
// mid-flight, disconnect with requests queued, send past their deadline, or
// open many connections at once. Requests meant to be queued are sent while
// the engine is held, so each test holds on any CPU. After each the next good
// request is answered correctly and sepconv_pending_requests returns to 0;
// the server finally exits 0 on SIGTERM (under ASan: LeakSanitizer clean).
//
// `fault_test --flood_client=HOST:PORT` is a helper mode: it floods the
// server with requests and never returns, so a test can SIGKILL it (a real
// disconnect with requests queued).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/security/sepconv_requests.h"
#include "tests/testing/engine_gate.h"
#include "tests/testing/free_port.h"

namespace sepconv::testing {
namespace {

const char kServerBinary[] = SEPCONV_GATED_SERVER_BINARY;
std::string self_path;              // argv[0], for the flood client
constexpr int kFloodInFlight = 64;  // requests the flood client keeps outstanding

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

const std::map<std::string, std::string> kModel = {{"model", "sepconv"}, {"version", "1"}};

std::map<std::string, std::string> WithStatus(const std::string& status) {
  std::map<std::string, std::string> labels = kModel;
  labels["status"] = status;
  return labels;
}

// A KServe v2 REST infer request for model sepconv with a binary input
// (Triton's binary tensor extension) of shape [n, c, h, w], all zeros.
std::string BinaryRestInferRequest(int n, int c, int h, int w) {
  const int64_t bytes = int64_t{4} * n * c * h * w;
  const std::string header =
      absl::StrCat(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[)", n, ",", c, ",", h,
                   ",", w, R"(],"parameters":{"binary_data_size":)", bytes, "}}]}");
  return absl::StrCat("POST /v2/models/sepconv/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                      "Content-Type: application/octet-stream\r\n",
                      "Inference-Header-Content-Length: ", header.size(), "\r\n",
                      "Content-Length: ", header.size() + bytes, "\r\n\r\n", header,
                      std::string(bytes, '\0'));
}

// Connects to 127.0.0.1:`port`, sends `bytes` and returns the open socket.
absl::StatusOr<int> SendOnNewConnection(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("connect: ", strerror(errno)));
  }
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return absl::InternalError(absl::StrCat("send: ", strerror(errno)));
    }
    sent += static_cast<size_t>(n);
  }
  return fd;
}

class FaultTest : public ::testing::Test {
 protected:
  // One engine worker that the tests can hold at a gate (the test build of
  // the server, tests/testing/engine_gate.h): what a test sends while it is
  // held is provably queued, on any CPU.
  static void SetUpTestSuite() {
    gate_ = new EngineGate;
    absl::StatusOr<int> http_port = FreePort();
    ASSERT_TRUE(http_port.ok()) << http_port.status();
    http_port_ = *http_port;
    auto server = ServerProcess::Start(
        kServerBinary, {"--max_batch_size=4", "--instances=1", "--max_queue_size=256",
                        gate_->Flag(), absl::StrCat("--http_port=", http_port_)});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete gate_;  // opens it
    gate_ = nullptr;
    if (server_ == nullptr) return;
    EXPECT_TRUE(server_->Signal(SIGTERM).ok());
    absl::StatusOr<int> code = server_->Wait(absl::Seconds(60));
    EXPECT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(code.value_or(-1), 0) << server_->Log();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  void TearDown() override { gate_->Open(); }

  double Metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    absl::StatusOr<double> value = server_->Metric(name, labels);
    EXPECT_TRUE(value.ok()) << value.status();
    return value.value_or(-1);
  }
  // Waits (hang guard only) until model sepconv has exactly `n` requests
  // queued.
  void WaitPending(double n) {
    absl::StatusOr<double> pending = server_->WaitForMetric("sepconv_pending_requests", kModel,
                                                            [n](double v) { return v == n; });
    ASSERT_TRUE(pending.ok()) << pending.status();
  }
  // Closes the gate and parks the worker on a batch of one request (sent by
  // `plug`), so that every request sent next waits in the queue.
  void HoldEngine(AsyncCalls* plug) {
    gate_->Close();
    plug->Send(MakeRequest(1, 28, 28, 1), absl::Seconds(120));
    absl::Status parked = gate_->WaitParked();
    ASSERT_TRUE(parked.ok()) << parked;
    WaitPending(0);
  }

  // The server took `n` requests out of its queue, counted CANCELLED on top
  // of `cancelled`, while the engine was still held: none was computed (the
  // executions are still `executions`).
  void ExpectCancelledUncomputed(double cancelled, int n, double executions) {
    absl::StatusOr<double> counted =
        server_->WaitForMetric("sepconv_inference_requests_total", WithStatus("CANCELLED"),
                               [cancelled, n](double v) { return v >= cancelled + n; });
    ASSERT_TRUE(counted.ok()) << counted.status();
    EXPECT_EQ(*counted, cancelled + n);
    WaitPending(0);
    EXPECT_TRUE(gate_->parked());
    EXPECT_EQ(Metric("sepconv_inference_executions_total", kModel), executions);
  }
  // Opens the gate: the plug's request is answered and the server is healthy.
  void ReleaseEngine(AsyncCalls* plug) {
    gate_->Open();
    ASSERT_TRUE(plug->WaitAll(absl::Seconds(60)));
    EXPECT_EQ(plug->Codes(), std::vector<grpc::StatusCode>{grpc::StatusCode::OK});
    ExpectHealthy();
  }

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

  static constexpr int kRestClients = 32;
  static EngineGate* gate_;
  static ServerProcess* server_;
  static int http_port_;
};
EngineGate* FaultTest::gate_ = nullptr;
int FaultTest::http_port_ = 0;
ServerProcess* FaultTest::server_ = nullptr;

TEST_F(FaultTest, ClientsCancelMidFlight) {
  AsyncCalls plug(ChannelTo(server_->target(), nullptr, 9));
  // Opens the gate before `plug` waits for its call, whatever happens.
  absl::Cleanup open_gate = [] { gate_->Open(); };
  HoldEngine(&plug);
  const double executions = Metric("sepconv_inference_executions_total", kModel);
  const double cancelled = Metric("sepconv_inference_requests_total", WithStatus("CANCELLED"));

  constexpr int kCalls = 48;
  AsyncCalls calls(ChannelTo(server_->target(), nullptr, 10));
  std::vector<AsyncCalls::Call*> sent;
  const inference::ModelInferRequest request = MakeRequest(1, 28, 28, 1);
  for (int i = 0; i < kCalls; ++i) sent.push_back(calls.Send(request, absl::Seconds(60)));
  WaitPending(kCalls);
  for (AsyncCalls::Call* call : sent) call->context.TryCancel();
  ASSERT_TRUE(calls.WaitAll(absl::Seconds(60)));
  for (grpc::StatusCode code : calls.Codes()) EXPECT_EQ(code, grpc::StatusCode::CANCELLED);

  ExpectCancelledUncomputed(cancelled, kCalls, executions);
  ReleaseEngine(&plug);
}

TEST_F(FaultTest, ClientDisconnectsWithRequestsQueued) {
  for (int round = 0; round < 3; ++round) {
    AsyncCalls plug(ChannelTo(server_->target(), nullptr, 20 + round));
    // Opens the gate before `plug` waits for its call, whatever happens.
    absl::Cleanup open_gate = [] { gate_->Open(); };
    HoldEngine(&plug);
    const double executions = Metric("sepconv_inference_executions_total", kModel);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const std::string arg = "--flood_client=" + server_->target();
      execl(self_path.c_str(), self_path.c_str(), arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // The flood client keeps 64 requests in flight and none can finish: wait
    // until they are all queued, then kill it (the kernel closes its
    // connection) and watch the server drop them, the engine still held.
    absl::StatusOr<double> pending = server_->WaitForMetric(
        "sepconv_pending_requests", kModel, [](double v) { return v == kFloodInFlight; });
    EXPECT_TRUE(pending.ok()) << "the flood client never got its requests queued: "
                              << pending.status();
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    WaitPending(0);
    EXPECT_EQ(Metric("sepconv_inference_executions_total", kModel), executions);
    gate_->Open();
    ASSERT_TRUE(plug.WaitAll(absl::Seconds(60)));
    ExpectHealthy();
  }
}

// A REST client that hangs up while its request is queued cancels it, as a
// gRPC client does: dropped from the queue, counted CANCELLED, not computed.
TEST_F(FaultTest, RestClientsDisconnectWithRequestsQueued) {
  AsyncCalls plug(ChannelTo(server_->target(), nullptr, 40));
  // Opens the gate before `plug` waits for its call, whatever happens.
  absl::Cleanup open_gate = [] { gate_->Open(); };
  HoldEngine(&plug);
  const double executions = Metric("sepconv_inference_executions_total", kModel);
  const double cancelled = Metric("sepconv_inference_requests_total", WithStatus("CANCELLED"));

  const std::string request = BinaryRestInferRequest(1, 32, 8, 8);
  std::vector<int> sockets;
  for (int i = 0; i < kRestClients; ++i) {
    absl::StatusOr<int> fd = SendOnNewConnection(http_port_, request);
    ASSERT_TRUE(fd.ok()) << fd.status();
    sockets.push_back(*fd);
  }
  WaitPending(kRestClients);
  for (int fd : sockets) close(fd);

  ExpectCancelledUncomputed(cancelled, kRestClients, executions);
  ReleaseEngine(&plug);
}

TEST_F(FaultTest, RequestsPastTheirDeadline) {
  AsyncCalls plug(ChannelTo(server_->target(), nullptr, 30));
  // Opens the gate before `plug` waits for its call, whatever happens.
  absl::Cleanup open_gate = [] { gate_->Open(); };
  HoldEngine(&plug);
  const double expired_before =
      Metric("sepconv_inference_requests_total", WithStatus("DEADLINE_EXCEEDED"));
  // Queued behind the held engine, every one outlives its deadline: 16 with
  // a 2 ms gRPC deadline, 16 with a 1 us KServe `timeout` parameter (and a
  // generous gRPC deadline), which only the server can enforce.
  const inference::ModelInferRequest big = MakeRequest(4, 56, 56, 2);
  inference::ModelInferRequest with_timeout = MakeRequest(1, 56, 56, 3);
  (*with_timeout.mutable_parameters())["timeout"].set_int64_param(1);  // 1 us
  AsyncCalls calls(ChannelTo(server_->target(), nullptr, 11));
  for (int i = 0; i < 16; ++i) {
    calls.Send(big, absl::Milliseconds(2));
    calls.Send(with_timeout, absl::Seconds(60));
  }
  ASSERT_TRUE(calls.WaitAll(absl::Seconds(60)));
  for (grpc::StatusCode code : calls.Codes()) {
    EXPECT_EQ(code, grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // The server dropped each from its queue at its deadline, uncomputed.
  WaitPending(0);
  EXPECT_GE(Metric("sepconv_inference_requests_total", WithStatus("DEADLINE_EXCEEDED")),
            expired_before + 16);
  ReleaseEngine(&plug);
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
  constexpr int kInFlight = kFloodInFlight;
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
