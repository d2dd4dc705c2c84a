#include "server/http/http_server.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "rapidjson/document.h"
#include "server/core/cancellation.h"
#include "server/http/extensions_json.h"
#include "server/http/http_status.h"
#include "server/http/infer_request_json.h"
#include "server/http/infer_response_json.h"
#include "server/http/metadata_json.h"
#include "server/http/shared_memory_json.h"

namespace sepconv {
namespace {

constexpr char kHeaderLength[] = "Inference-Header-Content-Length";
constexpr char kJson[] = "application/json";
// /v2/models/{m}[/versions/{v}]: matches[1] the model, matches[2] the version.
#define SEPCONV_MODEL_PATH R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)"
constexpr char kModelPath[] = SEPCONV_MODEL_PATH;
constexpr char kModelReadyPath[] = SEPCONV_MODEL_PATH "/ready";
constexpr char kInferPath[] = SEPCONV_MODEL_PATH "/infer";
constexpr char kConfigPath[] = SEPCONV_MODEL_PATH "/config";
#undef SEPCONV_MODEL_PATH
// /v2/models[/{m}[/versions/{v}]]/stats: matches[1] the model, [2] the version.
constexpr char kStatsPath[] = R"(/v2/models(?:/([^/]+)(?:/versions/([^/]+))?)?/stats)";
constexpr char kIndexPath[] = "/v2/repository/index";
// matches[1] the model.
constexpr char kLoadPath[] = R"(/v2/repository/models/([^/]+)/load)";
constexpr char kUnloadPath[] = R"(/v2/repository/models/([^/]+)/unload)";
// Triton's system shared-memory extension; matches[1] the region, if any.
#define SEPCONV_SHM_PATH R"(/v2/systemsharedmemory(?:/region/([^/]+))?)"
constexpr char kShmStatusPath[] = SEPCONV_SHM_PATH "/status";
constexpr char kShmUnregisterPath[] = SEPCONV_SHM_PATH "/unregister";
#undef SEPCONV_SHM_PATH
constexpr char kShmRegisterPath[] = R"(/v2/systemsharedmemory/region/([^/]+)/register)";

void ReplyError(const absl::Status& status, HttpResponse& res) {
  res.status = HttpStatusCode(status);
  res.SetContent(ErrorJson(status), kJson);
}

void ReplyReady(bool ready, HttpResponse& res) {
  // KServe v2 REST / Triton: 200 when ready, 4xx otherwise.
  res.status = ready ? 200 : 400;
}

// The shared-memory registry for a control call: auth first, then whether
// the extension is on.
absl::StatusOr<SharedMemoryRegistry*> SharedMemoryFor(const InferenceCore& core,
                                                      const HttpRequest& req) {
  if (absl::Status auth = core.Authenticate(req.Header("Authorization")); !auth.ok()) {
    return auth;
  }
  SharedMemoryRegistry* regions = core.shared_memory();
  if (regions == nullptr) return absl::UnavailableError(kSharedMemoryOff);
  return regions;
}

// The load request's body: empty, or an object whose "parameters" (config
// or file overrides, which are refused) is empty or absent.
absl::Status CheckLoadBody(absl::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == absl::string_view::npos) return absl::OkStatus();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError("the load body must be a JSON object");
  }
  const auto parameters = doc.FindMember("parameters");
  if (parameters == doc.MemberEnd()) return absl::OkStatus();
  if (!parameters->value.IsObject()) {
    return absl::InvalidArgumentError("\"parameters\" must be an object");
  }
  if (parameters->value.MemberCount() == 0) return absl::OkStatus();
  const auto& first = *parameters->value.MemberBegin();
  return LoadParametersRefused(std::string(first.name.GetString(), first.name.GetStringLength()));
}

std::string Peer(const HttpRequest& req) {
  return absl::StrCat(absl::StrContains(req.remote_addr, ':') ? "ipv6:[" : "ipv4:", req.remote_addr,
                      absl::StrContains(req.remote_addr, ':') ? "]:" : ":", req.remote_port);
}

// POST /v2/models/{m}[/versions/{v}]/infer: parses the body, runs it
// through the core on this pool thread and writes the answer.
void HandleInfer(InferenceCore& core, HttpRequest& req, const HttpResponder& responder) {
  InferCall call;
  call.start = absl::Now();
  call.auth = core.Authenticate(req.Header("Authorization"));
  call.peer = Peer(req);
  // A request that cannot be parsed is answered as the core answers its
  // own failures (counted under the model, logged), auth first: an
  // unauthenticated caller learns nothing about its body.
  const auto refuse = [&core, &req, &responder, &call](absl::Status status) {
    InferRequest names;
    names.model_name = req.matches[1];
    names.model_version = req.matches[2];
    core.Refuse(names, call, call.auth.ok() ? std::move(status) : call.auth,
                [&responder](absl::Status s) {
                  HttpResponse res;
                  ReplyError(s, res);
                  responder.Respond(std::move(res));
                });
  };
  // With the binary extension the transport put blanks (JSON allows them)
  // before the JSON header, so that the tensor bytes after it start 4-byte
  // aligned in the body: the engine then reads them where they are.
  std::optional<size_t> json_length;
  if (req.HasHeader(kHeaderLength)) {
    absl::StatusOr<size_t> header_length = ParseHeaderLength(req.Header(kHeaderLength));
    if (!header_length.ok()) return refuse(header_length.status());
    json_length = *header_length + req.pad;
  }
  absl::StatusOr<std::unique_ptr<RestInferRequest>> parsed =
      ParseInferRequest(std::move(req.body), json_length, req.matches[1], req.matches[2]);
  if (!parsed.ok()) return refuse(parsed.status());

  // What must live until the core is done: the request (its tensors are
  // views into the body) and the answer the engine writes into.
  struct Pending {
    Pending(std::unique_ptr<RestInferRequest> parsed)
        : request(std::move(parsed)), builder(request->request.id, request->binary_output) {}
    std::unique_ptr<RestInferRequest> request;
    InferResponseBuilder builder;
  };
  auto pending = std::make_shared<Pending>(*std::move(parsed));
  const auto cancellation = std::make_shared<Cancellation>();
  call.cancellation = cancellation;
  // A client that hangs up cancels its request (a queued one then ends
  // CANCELLED, uncomputed, as over gRPC).
  responder.OnHangUp([cancellation] { cancellation->Cancel(); });
  core.Infer(
      pending->request->request, std::move(call),
      [pending](const InferResult& result) -> absl::StatusOr<float*> {
        return pending->builder.Allocate(result);
      },
      [pending, responder](absl::Status status) {
        // The answer (JSON printing included) is made on a transport thread.
        responder.Respond([pending, status = std::move(status)]() {
          HttpResponse res;
          if (!status.ok()) {
            ReplyError(status, res);
            return res;
          }
          res.status = 200;
          if (pending->builder.header_length() > 0) {
            res.SetHeader(kHeaderLength, std::to_string(pending->builder.header_length()));
          }
          res.SetHeader("Content-Type", pending->builder.content_type());
          res.body = pending->builder.Finish();
          return res;
        });
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              std::shared_ptr<InferenceCore> core) {
  HttpTransportOptions transport;
  transport.address = options.address;
  transport.port = options.port;
  transport.threads = options.threads > 0
                          ? options.threads
                          : std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  transport.max_body_bytes = options.max_body_bytes;
  if (options.tls.enabled()) {
    absl::StatusOr<TlsPems> pems = LoadTls(options.tls);  // clear errors first
    if (!pems.ok()) return pems.status();
    transport.tls_cert = std::move(pems->cert);
    transport.tls_key = std::move(pems->key);
    transport.tls_client_ca = std::move(pems->client_ca);
  }
  std::unique_ptr<HttpServer> http(new HttpServer(std::move(core)));
  http->AddRoutes();
  const HttpServer* routes = http.get();
  absl::StatusOr<std::unique_ptr<HttpTransport>> started = HttpTransport::Start(
      transport,
      [routes](HttpRequest request, HttpResponder responder) {
        routes->Dispatch(request, responder);
      },
      [](absl::string_view message) { return ErrorJson(absl::UnknownError(message)); });
  if (!started.ok()) return started.status();
  http->transport_ = *std::move(started);
  return http;
}

HttpServer::HttpServer(std::shared_ptr<InferenceCore> core) : core_(std::move(core)) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (transport_ != nullptr) transport_->Shutdown();
}

void HttpServer::Get(const char* path, RouteHandler handler) {
  routes_.push_back(Route{"GET", std::regex(path), std::move(handler), nullptr});
}

void HttpServer::Post(const char* path, RouteHandler handler) {
  routes_.push_back(Route{"POST", std::regex(path), std::move(handler), nullptr});
}

void HttpServer::PostAsync(const char* path, AsyncRouteHandler handler) {
  routes_.push_back(Route{"POST", std::regex(path), nullptr, std::move(handler)});
}

void HttpServer::Dispatch(HttpRequest& request, const HttpResponder& responder) const {
  HttpResponse response;
  bool other_method = false;
  std::smatch matches;
  for (const Route& route : routes_) {
    if (!std::regex_match(request.path, matches, route.path)) continue;
    if (request.method != route.method) {
      other_method = true;
      continue;
    }
    request.matches.assign(matches.begin(), matches.end());
    if (route.async) return route.async(request, responder);
    route.handler(request, response);
    return responder.Respond(std::move(response));
  }
  if (other_method) {
    ReplyError(absl::InvalidArgumentError(
                   absl::StrCat(request.method, " is not allowed on ", request.path)),
               response);
    response.status = 405;  // as Triton answers
    return responder.Respond(std::move(response));
  }
  ReplyError(absl::NotFoundError(absl::StrCat("no route ", request.method, " ", request.path)),
             response);
  responder.Respond(std::move(response));
}

void HttpServer::AddRoutes() {
  InferenceCore& core = *core_;  // outlives the routes (held by this)
  // First: the route most requests take (no other route matches its paths).
  PostAsync(kInferPath, [&core](HttpRequest& req, const HttpResponder& responder) {
    HandleInfer(core, req, responder);
  });
  Get("/v2/health/live", [](const HttpRequest&, HttpResponse& res) { res.status = 200; });
  Get("/v2/health/ready",
      [&core](const HttpRequest&, HttpResponse& res) { ReplyReady(core.Ready(), res); });
  Get("/v2", [&core](const HttpRequest& req, HttpResponse& res) {
    if (absl::Status auth = core.Authenticate(req.Header("Authorization")); !auth.ok()) {
      return ReplyError(auth, res);
    }
    res.SetContent(ServerMetadataJson(core.ServerMetadata()), kJson);
  });
  AddExtensionRoutes();  // before kModelPath, which "/v2/models/stats" would match
  Get(kModelReadyPath, [&core](const HttpRequest& req, HttpResponse& res) {
    ReplyReady(core.ModelReady(req.matches[1], req.matches[2]), res);
  });
  Get(kModelPath, [&core](const HttpRequest& req, HttpResponse& res) {
    if (absl::Status auth = core.Authenticate(req.Header("Authorization")); !auth.ok()) {
      return ReplyError(auth, res);
    }
    absl::StatusOr<ModelMetadataInfo> info = core.ModelMetadata(req.matches[1], req.matches[2]);
    if (!info.ok()) return ReplyError(info.status(), res);
    res.SetContent(ModelMetadataJson(*info), kJson);
  });
  AddSharedMemoryRoutes();
}

void HttpServer::AddExtensionRoutes() {
  InferenceCore& core = *core_;  // outlives the routes (held by this)
  const auto authenticated = [&core](const HttpRequest& req, HttpResponse& res) {
    absl::Status auth = core.Authenticate(req.Header("Authorization"));
    if (!auth.ok()) ReplyError(auth, res);
    return auth.ok();
  };
  Get(kConfigPath, [&core, authenticated](const HttpRequest& req, HttpResponse& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<sepconv::ModelConfig> config = core.ModelConfig(req.matches[1], req.matches[2]);
    absl::StatusOr<std::string> json =
        config.ok() ? ModelConfigJson(*config) : absl::StatusOr<std::string>(config.status());
    if (!json.ok()) return ReplyError(json.status(), res);
    res.SetContent(*json, kJson);
  });
  Get(kStatsPath, [&core, authenticated](const HttpRequest& req, HttpResponse& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<std::vector<ModelVersionStats>> stats =
        core.ModelStatistics(req.matches[1], req.matches[2]);
    if (!stats.ok()) return ReplyError(stats.status(), res);
    res.SetContent(ModelStatisticsJson(*stats), kJson);
  });
  Post(kIndexPath, [&core, authenticated](const HttpRequest& req, HttpResponse& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<bool> ready = ParseIndexBody(req.Body());
    if (!ready.ok()) return ReplyError(ready.status(), res);
    res.SetContent(RepositoryIndexJson(core.RepositoryIndex(*ready)), kJson);
  });
  // Load and unload run on this pool thread (rare control calls; unload
  // waits for the model's queue to drain).
  Post(kLoadPath, [&core, authenticated](const HttpRequest& req, HttpResponse& res) {
    if (!authenticated(req, res)) return;
    const std::string model = req.matches[1];
    absl::Status status = core.CheckModelControl(model);
    if (status.ok()) status = CheckLoadBody(req.Body());
    if (status.ok()) status = core.LoadModel(model);
    if (!status.ok()) return ReplyError(status, res);
    res.status = 200;
  });
  Post(kUnloadPath, [&core, authenticated](const HttpRequest& req, HttpResponse& res) {
    if (!authenticated(req, res)) return;
    absl::Status status = core.UnloadModel(req.matches[1]);
    if (!status.ok()) return ReplyError(status, res);
    res.status = 200;
  });
}

void HttpServer::AddSharedMemoryRoutes() {
  InferenceCore& core = *core_;  // outlives the routes (held by this)
  Get(kShmStatusPath, [&core](const HttpRequest& req, HttpResponse& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::StatusOr<std::vector<SharedMemoryRegionInfo>> infos = (*regions)->Status(req.matches[1]);
    if (!infos.ok()) return ReplyError(infos.status(), res);
    res.SetContent(SharedMemoryStatusJson(*infos), kJson);
  });
  Post(kShmRegisterPath, [&core](const HttpRequest& req, HttpResponse& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::StatusOr<RegisterBody> body = ParseRegisterBody(req.Body());
    if (!body.ok()) return ReplyError(body.status(), res);
    absl::Status registered =
        (*regions)->Register(req.matches[1], body->key, body->offset, body->byte_size);
    if (!registered.ok()) return ReplyError(registered, res);
    res.status = 200;
  });
  Post(kShmUnregisterPath, [&core](const HttpRequest& req, HttpResponse& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::Status unregistered = (*regions)->Unregister(req.matches[1]);
    if (!unregistered.ok()) return ReplyError(unregistered, res);
    res.status = 200;
  });
}

}  // namespace sepconv
