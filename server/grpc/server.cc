#include "server/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sepconv {
namespace {

constexpr char kInferenceServiceName[] = "inference.GRPCInferenceService";

std::string HostPort(const std::string& address, int port) {
  const bool ipv6 = absl::StrContains(address, ':') && !absl::StartsWith(address, "[");
  return ipv6 ? absl::StrCat("[", address, "]:", port) : absl::StrCat(address, ":", port);
}

// A duration as gRPC's int milliseconds, capped at INT_MAX (about 24 days).
int ToIntMillis(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
}

}  // namespace

// gRPC's health service kept in step with the registry. Shared with the
// registry's observer, which may outlive the Server.
struct Server::Health {
  absl::Mutex mu;
  grpc::HealthCheckServiceInterface* service ABSL_GUARDED_BY(mu) = nullptr;
  std::set<std::string> names ABSL_GUARDED_BY(mu);

  void Update(const ModelRegistry& registry) {
    absl::MutexLock lock(&mu);
    if (service == nullptr) return;
    std::set<std::string> now;
    for (const std::string& name : registry.ModelNames()) {
      now.insert(name);
      service->SetServingStatus(name, registry.IsReady(name, ""));
    }
    for (const std::string& gone : names) {
      if (now.count(gone) == 0) service->SetServingStatus(gone, false);
    }
    names = std::move(now);
    service->SetServingStatus("", registry.AllModelsReady());
    service->SetServingStatus(kInferenceServiceName, true);
  }

  // Everything NOT_SERVING from now on.
  void Shutdown() {
    absl::MutexLock lock(&mu);
    if (service != nullptr) service->Shutdown();
    service = nullptr;
  }
};

Server::Server(ServerOptions options, std::shared_ptr<ModelRegistry> registry)
    : options_(std::move(options)),
      registry_(std::move(registry)),
      core_(std::make_shared<InferenceCore>(registry_, options_.core)),
      service_(std::make_shared<InferenceService>(registry_, core_, options_.service)),
      health_(std::make_shared<Health>()) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      std::shared_ptr<ModelRegistry> registry,
                                                      Metrics* metrics) {
  if (options.grpc_port < 0 || options.grpc_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("grpc_port ", options.grpc_port, " is not a port number (0..65535)"));
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes ", options.max_message_bytes, " must be positive"));
  }
  std::unique_ptr<Server> server(new Server(options, std::move(registry)));

  if (options.metrics_port != 0 && metrics != nullptr) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start(options.address, options.metrics_port, metrics->registry());
    if (!endpoint.ok()) return endpoint.status();
    server->metrics_endpoint_ = *std::move(endpoint);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string listen = HostPort(options.address, options.grpc_port);
  builder.AddListeningPort(
      listen, options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &server->grpc_port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Two servers must not silently share a port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  // Clients of an autoscaled Deployment must reconnect now and then to find
  // new replicas (see ServerOptions::max_connection_age).
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ToIntMillis(options.max_connection_age));
    if (options.max_connection_age_grace > absl::ZeroDuration()) {
      builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                 ToIntMillis(options.max_connection_age_grace));
    }
  }
  builder.RegisterService(server->service_.get());
  server->service_->WarmBuffers();  // for the models loaded so far; later ones below
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", listen));
  }

  {
    absl::MutexLock lock(&server->health_->mu);
    server->health_->service = server->grpc_server_->GetHealthCheckService();
  }
  server->health_->Update(*server->registry_);
  server->registry_->AddObserver(
      [health = server->health_, registry = std::weak_ptr<ModelRegistry>(server->registry_)] {
        if (auto locked = registry.lock()) health->Update(*locked);
      });
  server->registry_->AddObserver([service = std::weak_ptr<InferenceService>(server->service_)] {
    if (auto locked = service.lock()) locked->WarmBuffers();
  });

  return server;
}

Server::~Server() { Shutdown(); }

int Server::metrics_port() const {
  return metrics_endpoint_ != nullptr ? metrics_endpoint_->port() : 0;
}

void Server::Shutdown(absl::Time deadline) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // A server that never started serving must not stop the registry's models.
  if (grpc_server_ == nullptr) return;
  core_->StartShutdown();
  service_->StopStreams();
  health_->Shutdown();
  for (const std::shared_ptr<ServedModel>& model : registry_->LoadedModels()) {
    model->Shutdown(deadline);
  }
  absl::SleepFor(std::min(options_.drain_grace, deadline - absl::Now()));
  // Infer requests arriving since StartShutdown are held unanswered, so
  // their clients send nothing more: none can race the GOAWAY that gRPC's
  // Shutdown sends (gRPC cancels a call that arrives after Shutdown began,
  // and clients do not retry CANCELLED). Once the GOAWAY has had time to
  // reach them (options_.goaway_settle), they get
  // UNAVAILABLE and retry elsewhere.
  std::thread grpc_shutdown(
      [this, deadline] { grpc_server_->Shutdown(absl::ToChronoTime(deadline)); });
  absl::SleepFor(std::min(options_.goaway_settle, deadline - absl::Now()));
  core_->ReleaseRefusals();
  grpc_shutdown.join();
  grpc_server_->Wait();
  metrics_endpoint_.reset();
}

}  // namespace sepconv
