#ifndef SEPCONV_SERVER_HTTP_HTTP_SERVER_H_
#define SEPCONV_SERVER_HTTP_HTTP_SERVER_H_

// The KServe v2 REST frontend: its routes, on the HTTP/1.1 connections of
// http_transport.h (Boost.Beast).
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
// the core for every route but health, which stays open for probes. An
// infer request is parsed on a transport thread and handed to the core,
// which answers it later (the core's metrics, limits, log and deadline
// apply as for gRPC; the deadline is the request's "timeout" parameter); a
// client that hangs up meanwhile cancels it. HEAD is answered as GET
// without the body; another method on a known path is 405, on an unknown
// one 404.
//
// Thread-safe. Shutdown stops accepting connections and returns once every
// request in flight has been answered; call it after the core's
// StartShutdown (readiness false, refusals 503) and ReleaseRefusals.

#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/inference_core.h"
#include "server/core/tls.h"
#include "server/http/http_transport.h"

namespace sepconv {

struct HttpServerOptions {
  std::string address = "0.0.0.0";
  int port = 8000;  // 0 picks a free port (see HttpServer::port)
  // Threads serving the connections' I/O, parsing requests and making
  // answers (none waits for an inference); 0: one per CPU, at least 2.
  // Repository load and unload hold one while they run.
  int threads = 0;
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

  int port() const { return transport_->port(); }

  // Stops accepting, answers what is in flight, joins. Idempotent.
  void Shutdown();

 private:
  // Answers at once.
  using RouteHandler = std::function<void(HttpRequest&, HttpResponse&)>;
  // Answers through the responder, at once or later.
  using AsyncRouteHandler = std::function<void(HttpRequest&, const HttpResponder&)>;
  struct Route {
    const char* method;
    std::regex path;
    RouteHandler handler;     // or
    AsyncRouteHandler async;  // (one of them)
  };

  explicit HttpServer(std::shared_ptr<InferenceCore> core);
  void Get(const char* path, RouteHandler handler);
  void Post(const char* path, RouteHandler handler);
  void PostAsync(const char* path, AsyncRouteHandler handler);
  void AddRoutes();
  void AddExtensionRoutes();
  void AddSharedMemoryRoutes();
  // The first route whose method and path match answers (`request.matches`
  // set for it); else 404, or 405 when another method's route matches.
  void Dispatch(HttpRequest& request, const HttpResponder& responder) const;

  const std::shared_ptr<InferenceCore> core_;
  std::vector<Route> routes_;  // set before the transport starts, then read-only
  // Last: its threads, which run Dispatch, stop first.
  std::unique_ptr<HttpTransport> transport_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_HTTP_SERVER_H_
