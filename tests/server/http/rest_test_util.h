#ifndef SEPCONV_TESTS_SERVER_HTTP_REST_TEST_UTIL_H_
#define SEPCONV_TESTS_SERVER_HTTP_REST_TEST_UTIL_H_

// Helpers for the REST frontend's tests: a real in-process server with both
// frontends on one core (as main wires them), KServe v2 REST bodies for a
// tensor (JSON "data" or binary tensor data) and the output floats of an
// answer.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "httplib.h"
#include "server/http/http_server.h"
#include "server_test_util.h"

namespace sepconv::testing {

// TestServer's gRPC server and an HttpServer on its core, on 127.0.0.1.
struct RestServer {
  explicit RestServer(ServerOptions options = TestServer::DefaultOptions(),
                      HttpServerOptions http = Options());
  static HttpServerOptions Options();  // port 0, 8 threads, 4 MiB bodies
  std::unique_ptr<httplib::Client> Client() const;
  // The gRPC answer for `data` (raw or typed), or empty on error.
  std::vector<float> Grpc(const Dims4& dims, const std::vector<float>& data, bool raw);

  TestServer grpc;
  std::unique_ptr<HttpServer> rest;
};

// Whether two float vectors hold the same bits.
bool SameBits(const std::vector<float>& a, const std::vector<float>& b);

struct RestBody {
  std::string content;
  size_t header_length = 0;  // binary: Inference-Header-Content-Length
};

// An infer body for input `dims` holding `data`: JSON "data" (each float
// as its shortest exact decimal) or binary (also asking a binary output).
RestBody MakeRestBody(const Dims4& dims, const std::vector<float>& data, bool binary,
                      const std::string& id = "");

// POSTs `body` to /v2/models/{model}/infer (with the binary header if any).
httplib::Result PostInfer(httplib::Client& client, const std::string& model, const RestBody& body,
                          const httplib::Headers& extra = {});

// The output floats of a 200 answer (JSON or binary), read exactly.
absl::StatusOr<std::vector<float>> RestOutputFloats(const httplib::Response& response);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_HTTP_REST_TEST_UTIL_H_
