#ifndef SEPCONV_TESTS_TESTING_SERVER_PROCESS_H_
#define SEPCONV_TESTS_TESTING_SERVER_PROCESS_H_

// The one launcher of the real sepconv-server binary for tests: a
// ChildProcess (child_process.h: its log shown when it goes wrong, a
// sanitizer report fails the test) on free 127.0.0.1 ports, up when Start
// returns: gRPC health answers SERVING and /metrics answers 200 (bounded
// wait). Stopped with SIGTERM (SIGKILL after 10 s) on destruction.
// Not thread-safe except where noted.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/testing/child_process.h"

namespace sepconv::testing {

class ServerProcess {
 public:
  // Starts `binary` with --address=127.0.0.1, free --grpc_port and
  // --metrics_port, --threads=1, then `flags` (a repeated flag overrides an
  // earlier one). Waits up to `timeout` for grpc.health.v1 Check("") ==
  // SERVING over `credentials` (null: plaintext) and for /metrics.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& flags = {},
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
      absl::Duration timeout = absl::Seconds(90));
  ~ServerProcess();

  pid_t pid() const { return process_->pid(); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // "127.0.0.1:<grpc_port>"; with TLS use "localhost:<port>" (see
  // ChannelTo), the name in the test certificate.
  std::string target() const;
  // "http://127.0.0.1:<metrics_port>/metrics".
  std::string metrics_url() const;

  absl::Status Signal(int signo) { return process_->Signal(signo); }
  // Exit code (128 + signal when killed by one); an error if it has not
  // exited within `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout) { return process_->Wait(timeout); }
  bool running() { return process_->running(); }

  // What the server wrote to stdout and stderr so far.
  std::string Log() const { return process_->Log(); }
  // GET /metrics.
  absl::StatusOr<std::string> Scrape() const;
  // One sample's value from a scrape; 0 when the sample is absent.
  absl::StatusOr<double> Metric(const std::string& name,
                                const std::map<std::string, std::string>& labels) const;
  // Polls Metric(name, labels) until `reached` holds for its value and
  // returns that value; an error naming the last value after `timeout`. The
  // timeout is a hang guard: callers wait for what the server is sure to
  // reach (e.g. with its engine held at a gate), never for work being slow
  // or fast.
  absl::StatusOr<double> WaitForMetric(const std::string& name,
                                       const std::map<std::string, std::string>& labels,
                                       const std::function<bool(double)>& reached,
                                       absl::Duration timeout = absl::Seconds(60)) const;
  // Resident set size from /proc/<pid>/status, in bytes.
  absl::StatusOr<int64_t> RssBytes() const;

 private:
  ServerProcess() = default;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
};

// A channel of its own (own TCP connection) to `target`, without message
// size limits. Thread-safe.
std::shared_ptr<grpc::Channel> ChannelTo(const std::string& target,
                                         std::shared_ptr<grpc::ChannelCredentials> credentials,
                                         int connection_id = 0);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_SERVER_PROCESS_H_
