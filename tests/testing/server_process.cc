#include "tests/testing/server_process.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "health.grpc.pb.h"
#include "tests/testing/exposition.h"
#include "tests/testing/free_port.h"
#include "tests/testing/http_get.h"

namespace sepconv::testing {
namespace {

// "" when it answers SERVING, else why not.
std::string HealthProblem(grpc::health::v1::Health::Stub* health) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health->Check(&context, request, &response);
  if (!status.ok()) return status.error_message();
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::StrCat("health status ", response.status());
  }
  return "";
}

}  // namespace

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
  absl::StatusOr<int> grpc_port = FreePort();
  if (!grpc_port.ok()) return grpc_port.status();
  absl::StatusOr<int> metrics_port = FreePort();
  while (metrics_port.ok() && *metrics_port == *grpc_port) metrics_port = FreePort();
  if (!metrics_port.ok()) return metrics_port.status();
  server->grpc_port_ = *grpc_port;
  server->metrics_port_ = *metrics_port;
  const char* tmp = std::getenv("TMPDIR");
  std::string log_name =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/sepconv_server_log_XXXXXX");
  const int log_fd = mkstemp(log_name.data());
  if (log_fd < 0) return absl::InternalError("mkstemp failed");
  close(log_fd);
  server->log_path_ = log_name;

  std::vector<std::string> argv = {binary,
                                   "--address=127.0.0.1",
                                   absl::StrCat("--grpc_port=", *grpc_port),
                                   "--http_port=0",
                                   absl::StrCat("--metrics_port=", *metrics_port),
                                   "--threads=1"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  server->process_ = std::make_unique<ChildProcess>(argv, log_name);
  if (server->pid() <= 0) return absl::InternalError("fork failed");

  auto health = grpc::health::v1::Health::NewStub(ChannelTo(server->target(), credentials));
  const absl::Time give_up = absl::Now() + timeout;
  std::string problem = "not started";
  while (absl::Now() < give_up) {
    if (!server->running()) {
      return absl::InternalError(absl::StrCat("sepconv-server exited early (",
                                              server->Wait(absl::ZeroDuration()).value_or(-1),
                                              "):\n", server->Log()));
    }
    problem = HealthProblem(health.get());
    if (problem.empty()) {
      absl::StatusOr<HttpResponse> metrics =
          HttpGet(server->metrics_port_, "/metrics", absl::Milliseconds(500));
      if (metrics.ok() && metrics->status == 200) return server;
      problem = metrics.ok() ? absl::StrCat("/metrics answered HTTP ", metrics->status)
                             : metrics.status().ToString();
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("sepconv-server not up after ",
                                                  absl::FormatDuration(timeout), " (", problem,
                                                  "):\n", server->Log()));
}

ServerProcess::~ServerProcess() {
  process_.reset();  // stops it and shows its log if it went wrong
  if (!log_path_.empty()) std::remove(log_path_.c_str());
}

std::string ServerProcess::target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

std::string ServerProcess::metrics_url() const {
  return absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics");
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

absl::StatusOr<double> ServerProcess::WaitForMetric(
    const std::string& name, const std::map<std::string, std::string>& labels,
    const std::function<bool(double)>& reached, absl::Duration timeout) const {
  const absl::Time give_up = absl::Now() + timeout;
  absl::StatusOr<double> value;
  for (;;) {
    value = Metric(name, labels);
    if (value.ok() && reached(*value)) return value;
    if (absl::Now() >= give_up) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      name, " did not reach the value waited for within ", absl::FormatDuration(timeout),
      "; last: ", value.ok() ? absl::StrCat(*value) : value.status().ToString()));
}

absl::StatusOr<int64_t> ServerProcess::RssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid(), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    rest = absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB");
    int64_t kb = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) break;
    return kb * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS for pid ", pid()));
}

}  // namespace sepconv::testing
