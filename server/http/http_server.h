#ifndef SEPCONV_SERVER_HTTP_HTTP_SERVER_H_
#define SEPCONV_SERVER_HTTP_HTTP_SERVER_H_

// The KServe v2 REST frontend on cpp-httplib (Debian's libcpp-httplib-dev:
// a small, well-kept blocking HTTP/1.1 server with OpenSSL TLS and a thread
// pool; enough for a frontend whose handlers wait on the core's batcher).
//   GET  /v2/health/live                        200
//   GET  /v2/health/ready                       200, 400 when not ready
//   GET  /v2                                    server metadata
//   GET  /v2/models/{m}[/versions/{v}]          model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready    200, 400 when not ready
//   POST /v2/models/{m}[/versions/{v}]/infer    infer_request_json.h
//   GET  /v2/models/{m}[/versions/{v}]/config   Triton's extensions, through
//   GET  /v2/models[/{m}[/versions/{v}]]/stats  the core as over gRPC
//   POST /v2/repository/index                   (extensions_json.h)
//   POST /v2/repository/models/{m}/load
//   POST /v2/repository/models/{m}/unload
//   GET  /v2/systemsharedmemory[/region/{r}]/status      Triton's system
//   POST /v2/systemsharedmemory/region/{r}/register      shared-memory
//   POST /v2/systemsharedmemory[/region/{r}]/unregister  extension
//                                               (shared_memory_json.h; 503
//                                               when the server has it off)
// Readiness answers as the KServe v2 REST spec and Triton do (4xx when not
// ready). Errors are {"error": "..."} with http_status.h's code; an unknown
// path is 404, a known path with the other method 405, a body over
// max_body_bytes 413. The bearer token (Authorization header) is checked by
// the core for every route but health, which stays open for probes. Every
// request runs on one of `threads` pool threads, which waits for the core to
// answer (the core's metrics, limits, log and deadline apply as for gRPC;
// the deadline is the request's "timeout" parameter).
//
// Thread-safe. Shutdown stops accepting connections and returns once every
// request in flight has been answered; call it after the core's
// StartShutdown (readiness false, refusals 503) and ReleaseRefusals.

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/core/inference_core.h"
#include "server/core/tls.h"

namespace httplib {
class Server;
}

namespace sepconv {

struct HttpServerOptions {
  std::string address = "0.0.0.0";
  int port = 8000;  // 0 picks a free port (see HttpServer::port)
  // Pool threads answering requests; each infer request holds one until the
  // core answers, so this bounds the REST requests in flight.
  int threads = 16;
  // Largest request body; fits a 1x32x224x224 fp32 JSON request.
  size_t max_body_bytes = size_t{256} << 20;  // as --http_max_body_bytes
  // TLS files (checked with LoadTls first); all empty: plain HTTP.
  TlsOptions tls;
};

class HttpServer {
 public:
  // Binds and starts serving requests through `core` (shared with the gRPC
  // frontend: Server::core()). UNAVAILABLE when the port cannot be bound, INVALID_ARGUMENT for bad
  // options or TLS files.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           std::shared_ptr<InferenceCore> core);
  ~HttpServer();  // Shutdown

  int port() const { return port_; }

  // Stops accepting, answers what is in flight, joins. Idempotent.
  void Shutdown();

 private:
  HttpServer(std::shared_ptr<InferenceCore> core, std::unique_ptr<httplib::Server> server);
  void AddRoutes();
  void AddExtensionRoutes();
  void AddSharedMemoryRoutes();

  const std::shared_ptr<InferenceCore> core_;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_HTTP_SERVER_H_
