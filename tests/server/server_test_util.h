#ifndef SEPCONV_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define SEPCONV_TESTS_SERVER_SERVER_TEST_UTIL_H_

// Helpers for the server tests: an in-process server on a free loopback
// port, malformed requests; requests and tensors from tests/testing.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "grpc_service.grpc.pb.h"
#include "server/grpc/server.h"
#include "server/metrics/metrics.h"
#include "server/models/model_registry.h"
#include "tests/testing/infer_requests.h"
#include "tests/testing/tensors.h"

namespace sepconv::testing {

// The default model `sepconv` served in-process on 127.0.0.1, port 0, with
// metrics (no metrics endpoint).
class TestServer {
 public:
  explicit TestServer(ServerOptions options = DefaultOptions());
  ~TestServer();

  static ServerOptions DefaultOptions();

  std::unique_ptr<inference::GRPCInferenceService::Stub> NewStub() const;
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  Server& server() { return *server_; }
  ModelRegistry& registry() { return *registry_; }
  Metrics& metrics() { return *metrics_; }
  // sepconv_inference_requests_total{model="sepconv",status=`status`}.
  double RequestCount(const std::string& status) const;

 private:
  std::unique_ptr<Metrics> metrics_;
  std::shared_ptr<ModelRegistry> registry_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// `options` with bearer-token authentication for `tokens` (core.auth from
// TokenAuthenticator::FromTokens, whose errors it returns).
absl::StatusOr<ServerOptions> WithTokens(ServerOptions options, std::vector<std::string> tokens);

// A second model served by TestServer: one 32 -> 16 layer, kernel 5,
// padding 0, so inputs smaller than 5x5 are refused.
inline constexpr char kValidPaddingModel[] = "k5_valid";
ModelSpec ValidPaddingModel();

// One malformed request: how to break a good 1x32x8x8 raw request for
// `model`, the status code expected and a piece of the message that names
// the offending field.
struct MalformedCase {
  std::string name;
  std::function<void(inference::ModelInferRequest*)> mutate;
  absl::StatusCode code;
  std::string needle;
  std::string model = "sepconv";
  // Decided by validation (false: by the registry lookup).
  bool validation = true;
};
std::vector<MalformedCase> MalformedCases();
// gtest prints a case by its name.
inline void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

// A ClientContext with a deadline `seconds` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(double seconds = 30);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_SERVER_TEST_UTIL_H_
