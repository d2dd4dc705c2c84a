#ifndef SEPCONV_SERVER_GRPC_SERVER_H_
#define SEPCONV_SERVER_GRPC_SERVER_H_

// The sepconv-serve process minus its flags: a grpc::Server carrying the
// KServe v2 inference service, gRPC's health service (overall, per model
// name and per service name) and server reflection, plus the Prometheus
// endpoint. Models come from a ModelRegistry that may change while serving;
// health follows it.
//
// Shutdown is graceful: readiness turns false at once (ServerReady, health
// NOT_SERVING), new inference requests get UNAVAILABLE, every model's queue
// drains until the deadline (then what is still queued gets UNAVAILABLE),
// new requests keep getting UNAVAILABLE for a short grace, and finally gRPC
// stops.
//
// Thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "server/grpc/inference_service.h"
#include "server/metrics/metrics.h"
#include "server/models/model_options.h"
#include "server/models/model_registry.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace sepconv {

// The model options (threads, instances, batching, exit_timeout) and the
// gRPC listener's.
struct ServerOptions : ModelOptions {
  std::string address = "0.0.0.0";
  int grpc_port = 8001;     // 0 picks a free port (see Server::grpc_port)
  int metrics_port = 8002;  // 0 turns the metrics endpoint off
  // Largest request or response; fits a 1x32x224x224 fp32 request and its
  // 1x64x224x224 output with room to spare.
  int max_message_bytes = 64 << 20;
  // After the queues have drained, how long the server keeps taking new
  // requests (held unanswered, then refused UNAVAILABLE, which clients retry)
  // before gRPC stops: calls that reach a stopping gRPC server end CANCELLED,
  // which clients do not retry. Capped by the shutdown deadline.
  absl::Duration drain_grace = absl::Milliseconds(300);
  // Infer requests arriving once shutdown began are held unanswered while
  // gRPC's GOAWAY goes out, this long after gRPC's Shutdown started, then
  // refused UNAVAILABLE (see Server::Shutdown). Enough for loopback and a
  // LAN; longer for slow links or loaded hosts. Capped by the deadline.
  absl::Duration goaway_settle = absl::Milliseconds(200);
  // Null means plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Token auth, failure log and request size limits: the inference core's,
  // whichever frontend a request comes through (server/core/inference_core.h).
  CoreOptions core;
  // The gRPC service's own options (stream bound, repository control).
  InferenceServiceOptions service;
  // HTTP/2 streams one connection may have open at once; 0 = gRPC's default.
  int max_concurrent_streams = 0;
  // Connection ageing: after about `max_connection_age` (gRPC adds +-10%
  // jitter) a connection gets GOAWAY; its calls in flight get
  // `max_connection_age_grace` to finish, new calls go to a new connection.
  // A client re-resolves its target then, so a long-lived client reaches the
  // replicas an autoscaler added since. One minute: the HPA acts on 15 s
  // metric periods and pods take tens of seconds to start, so a new pod is
  // reached within about one more minute, at the cost of one reconnect per
  // client per minute. The grace is the default exit timeout: no inference
  // runs that long. Zero means never (gRPC's default).
  absl::Duration max_connection_age = absl::Seconds(60);
  absl::Duration max_connection_age_grace = absl::Seconds(30);
};

class Server {
 public:
  // Binds, starts serving `registry` and, when options.metrics_port != 0 and
  // `metrics` is not null, the metrics endpoint. `metrics` may be null and
  // must outlive the Server. The Server builds the process's one
  // InferenceCore (over `registry` and options.core); other frontends (REST)
  // take it from core() and so share its auth, limits, failure log, metrics
  // and shutdown.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       std::shared_ptr<ModelRegistry> registry,
                                                       Metrics* metrics);
  // Shuts down (deadline now + exit_timeout) unless already done.
  ~Server();

  // The ports actually bound; metrics_port() is 0 when the endpoint is off.
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const;

  // The inference core every frontend runs requests through; Shutdown
  // starts its shutdown (new requests refused UNAVAILABLE, refusals held
  // until gRPC's GOAWAY had time to arrive) and releases the held refusals.
  const std::shared_ptr<InferenceCore>& core() const { return core_; }

  // Graceful shutdown (see above); returns when gRPC has stopped. Idempotent.
  void Shutdown(absl::Time deadline);
  void Shutdown() { Shutdown(absl::Now() + options_.exit_timeout); }

 private:
  struct Health;
  Server(ServerOptions options, std::shared_ptr<ModelRegistry> registry);

  const ServerOptions options_;
  const std::shared_ptr<ModelRegistry> registry_;
  const std::shared_ptr<InferenceCore> core_;
  std::shared_ptr<InferenceService> service_;  // shared with the registry's observer
  std::shared_ptr<Health> health_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  int grpc_port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_SERVER_H_
