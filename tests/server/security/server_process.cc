#include "tests/server/security/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "engine/executor.h"
#include "engine/random_model.h"
#include "exposition.h"
#include "health.grpc.pb.h"
#include "http_get.h"

namespace sepconv::testing {

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("bind: ", strerror(errno)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::shared_ptr<grpc::Channel> ChannelTo(const std::string& target,
                                         std::shared_ptr<grpc::ChannelCredentials> credentials,
                                         int connection_id) {
  grpc::ChannelArguments args;
  // Distinct arguments give distinct subchannels, hence distinct connections.
  args.SetInt("sepconv.test.connection_id", connection_id);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(target, credentials, args);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::vector<std::string>& flags,
    std::shared_ptr<grpc::ChannelCredentials> credentials, absl::Duration timeout) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  absl::StatusOr<int> grpc_port = PickFreePort();
  absl::StatusOr<int> metrics_port = PickFreePort();
  if (!grpc_port.ok()) return grpc_port.status();
  if (!metrics_port.ok()) return metrics_port.status();
  server->grpc_port_ = *grpc_port;
  server->metrics_port_ = *metrics_port;
  char log_name[] = "/tmp/sepconv_server_log_XXXXXX";
  const int log_fd = mkstemp(log_name);
  if (log_fd < 0) return absl::InternalError("mkstemp failed");
  server->log_path_ = log_name;

  std::vector<std::string> args = {binary, "--address=127.0.0.1",
                                   absl::StrCat("--grpc_port=", *grpc_port),
                                   absl::StrCat("--metrics_port=", *metrics_port), "--threads=1"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  server->pid_ = pid;

  auto channel = ChannelTo(server->target(), credentials);
  auto health = grpc::health::v1::Health::NewStub(channel);
  const absl::Time give_up = absl::Now() + timeout;
  std::string last_error;
  while (absl::Now() < give_up) {
    if (!server->running()) {
      return absl::InternalError(absl::StrCat(
          "sepconv-server exited with ", server->exit_code_.value_or(-1), ":\n", server->Log()));
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = health->Check(&context, request, &response);
    if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return server;
    }
    last_error = status.error_message();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("sepconv-server not SERVING after ",
                                                  absl::FormatDuration(timeout), " (", last_error,
                                                  "):\n", server->Log()));
}

namespace {

// True when `log` holds a sanitizer's error report.
bool HasSanitizerReport(const std::string& log) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "WARNING: ThreadSanitizer", ": runtime error: "}) {
    if (log.find(marker) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && running()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (log_path_.empty()) return;
  // A server that ended badly shows its whole log in the test output (the
  // file is about to go): one that carries a sanitizer report, or exited
  // non-zero or by a signal of its own (not this destructor's SIGKILL).
  const std::string log = Log();
  if (HasSanitizerReport(log) || (exit_code_.has_value() && *exit_code_ != 0)) {
    std::cerr << "---- sepconv-server (pid " << pid_ << ") "
              << (exit_code_.has_value() ? absl::StrCat("exited with ", *exit_code_)
                                         : std::string("was killed at the end"))
              << (HasSanitizerReport(log) ? "; a sanitizer reported an error" : "")
              << ". Everything it wrote:\n"
              << log << "---- end of sepconv-server (pid " << pid_ << ")\n";
  }
  std::remove(log_path_.c_str());
}

std::string ServerProcess::target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

absl::Status ServerProcess::Signal(int signo) const {
  if (kill(pid_, signo) != 0) return absl::InternalError(absl::StrCat("kill: ", strerror(errno)));
  return absl::OkStatus();
}

bool ServerProcess::running() {
  if (exit_code_.has_value()) return false;
  int status = 0;
  const pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == 0) return true;
  if (done == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    exit_code_ = -1;
  }
  return false;
}

absl::StatusOr<int> ServerProcess::Wait(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (running()) {
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("sepconv-server still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return *exit_code_;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::string> ServerProcess::Scrape() const {
  absl::StatusOr<HttpResponse> response = HttpGet(metrics_port_, "/metrics");
  if (!response.ok()) return response.status();
  if (response->status != 200) {
    return absl::InternalError(absl::StrCat("/metrics answered HTTP ", response->status));
  }
  return response->body;
}

absl::StatusOr<double> ServerProcess::Metric(
    const std::string& name, const std::map<std::string, std::string>& labels) const {
  absl::StatusOr<std::string> text = Scrape();
  if (!text.ok()) return text.status();
  absl::StatusOr<Exposition> exposition = Exposition::Parse(*text);
  if (!exposition.ok()) return exposition.status();
  return exposition->Value(name, labels).value_or(0.0);
}

absl::StatusOr<int64_t> ServerProcess::RssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    rest = absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB");
    int64_t kb = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) break;
    return kb * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS for pid ", pid_));
}

inference::ModelInferRequest MakeRequest(int64_t n, int64_t h, int64_t w, uint32_t seed) {
  inference::ModelInferRequest request;
  request.set_model_name("sepconv");
  request.set_id(absl::StrCat("seed-", seed));
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  for (int64_t d : {n, int64_t{32}, h, w}) input->add_shape(d);
  std::vector<float> values(n * 32 * h * w);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : values) v = dist(rng);
  request.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return request;
}

absl::StatusOr<std::vector<float>> ExpectedOutput(const inference::ModelInferRequest& request) {
  static absl::Mutex mu;
  static std::unique_ptr<Executor> executor;
  absl::MutexLock lock(&mu);
  if (executor == nullptr) {
    ExecutorOptions options;
    options.threads = 1;
    auto created = Executor::Create(std::make_shared<ModelSpec>(DefaultModel()), options);
    if (!created.ok()) return created.status();
    executor = *std::move(created);
  }
  const auto& shape = request.inputs(0).shape();
  const Dims4 dims{shape[0], shape[1], shape[2], shape[3]};
  absl::StatusOr<Dims4> out = InferOutputShape(executor->model(), dims);
  if (!out.ok()) return out.status();
  std::vector<float> output(out->n * out->c * out->h * out->w);
  std::vector<float> input(dims.n * dims.c * dims.h * dims.w);
  std::memcpy(input.data(), request.raw_input_contents(0).data(), input.size() * sizeof(float));
  absl::StatusOr<FlopCount> ran = executor->Run(dims, input.data(), output.data());
  if (!ran.ok()) return ran.status();
  return output;
}

absl::Status CheckResponse(const inference::ModelInferResponse& response,
                           const std::vector<float>& expected) {
  if (response.outputs_size() != 1 || response.raw_output_contents_size() != 1) {
    return absl::DataLossError("response does not carry one raw output");
  }
  const std::string& raw = response.raw_output_contents(0);
  if (raw.size() != expected.size() * sizeof(float)) {
    return absl::DataLossError(absl::StrCat("output has ", raw.size(), " bytes, expected ",
                                            expected.size() * sizeof(float)));
  }
  std::vector<float> got(expected.size());
  std::memcpy(got.data(), raw.data(), raw.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - expected[i]) <= 1e-4f * (1.0f + std::fabs(expected[i])))) {
      return absl::DataLossError(
          absl::StrCat("output[", i, "] = ", got[i], ", expected ", expected[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status WaitPendingZero(const ServerProcess& server, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  double last = -1;
  while (absl::Now() < give_up) {
    absl::StatusOr<double> pending =
        server.Metric("sepconv_pending_requests", {{"model", "sepconv"}, {"version", "1"}});
    if (pending.ok()) {
      last = *pending;
      if (last == 0) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("sepconv_pending_requests still ", last));
}

}  // namespace sepconv::testing
