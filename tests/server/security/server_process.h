#ifndef SEPCONV_TESTS_SERVER_SECURITY_SERVER_PROCESS_H_
#define SEPCONV_TESTS_SERVER_SECURITY_SERVER_PROCESS_H_

// The real sepconv-server binary as a child process on free 127.0.0.1 ports,
// for tests: started with extra flags, waited for until gRPC health answers
// SERVING, signalled, scraped, and reaped. Every wait is bounded. The
// destructor SIGKILLs a server that is still running, and prints the
// server's whole log to stderr when it holds a sanitizer report or the server
// exited non-zero or by a signal of its own. Also: request/response
// helpers for the built-in model `sepconv` (32 -> 64 channels) and its
// expected answers from the engine.
// Not thread-safe except where noted.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/model_spec.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace sepconv::testing {

// A port that was free on 127.0.0.1 a moment ago.
absl::StatusOr<int> PickFreePort();

class ServerProcess {
 public:
  // Starts `binary` with --address=127.0.0.1, free --grpc_port and
  // --metrics_port, --threads=1, then `flags`. Waits up to `timeout` for
  // grpc.health.v1 Check("") == SERVING over `credentials` (null:
  // plaintext). stderr goes to a temp file (see Log).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& flags,
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
      absl::Duration timeout = absl::Seconds(90));
  ~ServerProcess();

  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // "127.0.0.1:<grpc_port>"; with TLS use "localhost:<port>" (see
  // ChannelTo), the name in the test certificate.
  std::string target() const;

  absl::Status Signal(int signo) const;
  // Exit code (128 + signal when killed by one); an error if it has not
  // exited within `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  bool running();

  // What the server wrote to stderr so far.
  std::string Log() const;
  // GET /metrics.
  absl::StatusOr<std::string> Scrape() const;
  // One sample's value from a scrape; 0 when the sample is absent.
  absl::StatusOr<double> Metric(const std::string& name,
                                const std::map<std::string, std::string>& labels) const;
  // Resident set size from /proc/<pid>/status, in bytes.
  absl::StatusOr<int64_t> RssBytes() const;

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// A channel of its own (own TCP connection) to `target`.
std::shared_ptr<grpc::Channel> ChannelTo(const std::string& target,
                                         std::shared_ptr<grpc::ChannelCredentials> credentials,
                                         int connection_id = 0);

// A raw-form request for model `sepconv` with deterministic values from
// `seed`; shape [n, 32, h, w].
inference::ModelInferRequest MakeRequest(int64_t n, int64_t h, int64_t w, uint32_t seed);

// The engine's answer to `request` (DefaultModel on the oneDNN executor).
// Thread-safe.
absl::StatusOr<std::vector<float>> ExpectedOutput(const inference::ModelInferRequest& request);

// OK when `response` carries exactly `expected` (within 1e-4 relative).
absl::Status CheckResponse(const inference::ModelInferResponse& response,
                           const std::vector<float>& expected);

// Polls `sepconv_pending_requests` of model sepconv until it is 0; an error
// with the last value after `timeout`.
absl::Status WaitPendingZero(const ServerProcess& server,
                             absl::Duration timeout = absl::Seconds(20));

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_SECURITY_SERVER_PROCESS_H_
