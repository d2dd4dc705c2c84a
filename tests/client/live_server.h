#ifndef SEPCONV_TESTS_CLIENT_LIVE_SERVER_H_
#define SEPCONV_TESTS_CLIENT_LIVE_SERVER_H_

// The real sepconv-server binary ($SEPCONV_SERVER_BIN) as a child process on
// free 127.0.0.1 ports, up and SERVING when Start returns (bounded wait).
// Stopped (SIGTERM) on destruction. Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "tests/client/process.h"

namespace sepconv::testing {

class LiveServer {
 public:
  // `probe` is how the readiness check connects (e.g. TLS for a TLS server).
  static absl::StatusOr<std::unique_ptr<LiveServer>> Start(
      const std::vector<std::string>& extra_flags = {}, client::ClientOptions probe = {});
  std::string target() const;
  std::string metrics_url() const;
  int grpc_port() const { return grpc_port_; }

 private:
  LiveServer() = default;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_CLIENT_LIVE_SERVER_H_
