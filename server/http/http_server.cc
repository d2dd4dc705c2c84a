#include "server/http/http_server.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "rapidjson/document.h"
#include "server/core/cancellation.h"
#include "server/http/compression.h"
#include "server/http/extensions_json.h"
#include "server/http/http_status.h"
#include "server/http/infer_request_json.h"
#include "server/http/infer_response_json.h"
#include "server/http/metadata_json.h"
#include "server/http/peer_hangup.h"
#include "server/http/shared_memory_json.h"

namespace sepconv {
namespace {

constexpr char kHeaderLength[] = "Inference-Header-Content-Length";
constexpr char kJson[] = "application/json";
// Where the client's Accept-Encoding is kept, out of httplib's sight.
constexpr char kAcceptEncodingKept[] = "X-Sepconv-Accept-Encoding";
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

void ReplyError(const absl::Status& status, httplib::Response& res) {
  res.status = HttpStatusCode(status);
  res.set_content(ErrorJson(status), kJson);
}

void ReplyReady(bool ready, httplib::Response& res) {
  // KServe v2 REST / Triton: 200 when ready, 4xx otherwise.
  res.status = ready ? 200 : 400;
}

// The shared-memory registry for a control call: auth first, then whether
// the extension is on.
absl::StatusOr<SharedMemoryRegistry*> SharedMemoryFor(const InferenceCore& core,
                                                      const httplib::Request& req) {
  if (absl::Status auth = core.Authenticate(req.get_header_value("Authorization")); !auth.ok()) {
    return auth;
  }
  SharedMemoryRegistry* regions = core.shared_memory();
  if (regions == nullptr) return absl::UnavailableError(kSharedMemoryOff);
  return regions;
}

// The load request's body: empty, or an object whose "parameters" (config
// or file overrides, which are refused) is empty or absent.
absl::Status CheckLoadBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return absl::OkStatus();
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

std::string Peer(const httplib::Request& req) {
  return absl::StrCat("ipv4:", req.remote_addr, ":", req.remote_port);
}

// Waits for `finished`; a client that hangs up meanwhile cancels the request
// (a queued one then ends CANCELLED, uncomputed, as over gRPC). Requests that
// finish within the first slice never look for their socket.
void WaitWatchingThePeer(const httplib::Request& req, Cancellation& cancellation,
                         absl::Notification& finished) {
  constexpr absl::Duration kSlice = absl::Milliseconds(10);
  if (finished.WaitForNotificationWithTimeout(kSlice)) return;
  PeerHangUp peer(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
  while (!finished.WaitForNotificationWithTimeout(kSlice)) {
    if (peer.HungUp()) {
      cancellation.Cancel();
      break;
    }
  }
  finished.WaitForNotification();
}

// Reads an infer request's body from httplib straight into the string the
// parser keeps (no copy into httplib's own body string first), with room
// for all of it made once from Content-Length (httplib still reads the
// socket 4 KiB at a time). With the binary extension, the JSON header is
// preceded by blanks (JSON allows them) so that the tensor bytes after it
// start 4-byte aligned: the engine then reads them where they are instead
// of copying them. Sets `json_length` to the header length, blanks
// included. False when httplib could not read the body (then it has set the
// answer's status: 413 past --http_max_body_bytes, 400 otherwise).
bool ReadInferBody(const httplib::Request& req, const httplib::ContentReader& content_reader,
                   std::optional<size_t> header_length, std::string& body,
                   std::optional<size_t>& json_length) {
  const size_t blanks = header_length.has_value() ? (4 - *header_length % 4) % 4 : 0;
  body.assign(blanks, ' ');
  constexpr size_t kParserPadding = 64;  // simdjson reads past the JSON
  size_t declared = 0;
  const std::string length = req.get_header_value("Content-Length");
  if (absl::SimpleAtoi(length, &declared) && declared <= (size_t{1} << 40)) {
    body.reserve(blanks + declared + kParserPadding);
  }
  const bool read = content_reader([&body](const char* data, size_t size) {
    body.append(data, size);
    return true;
  });
  json_length =
      header_length.has_value() ? std::optional<size_t>(*header_length + blanks) : std::nullopt;
  return read;
}

// POST /v2/models/{m}[/versions/{v}]/infer: parses the body, runs it
// through the core on this pool thread and writes the answer.
void HandleInfer(InferenceCore& core, const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& content_reader) {
  InferCall call;
  call.start = absl::Now();
  call.auth = core.Authenticate(req.get_header_value("Authorization"));
  call.peer = Peer(req);
  // A request that cannot be parsed is answered as the core answers its
  // own failures (counted under the model, logged), auth first: an
  // unauthenticated caller learns nothing about its body.
  const auto refuse = [&core, &req, &res, &call](absl::Status status) {
    InferRequest names;
    names.model_name = req.matches[1].str();
    names.model_version = req.matches[2].str();
    core.Refuse(names, call, call.auth.ok() ? std::move(status) : call.auth,
                [&res](absl::Status s) { ReplyError(s, res); });
  };
  // The body is read whatever the answer: the connection carries the next
  // request after it.
  absl::StatusOr<std::optional<size_t>> header_length = std::optional<size_t>();
  if (req.has_header(kHeaderLength)) {
    header_length = ParseHeaderLength(req.get_header_value(kHeaderLength));
  }
  std::string body;
  std::optional<size_t> json_length;
  if (!ReadInferBody(req, content_reader, header_length.ok() ? *header_length : std::nullopt, body,
                     json_length)) {
    return;  // answered by httplib (and ErrorBodies), as for any route
  }
  if (!header_length.ok()) return refuse(header_length.status());
  absl::StatusOr<std::unique_ptr<RestInferRequest>> parsed =
      ParseInferRequest(std::move(body), json_length, req.matches[1].str(), req.matches[2].str());
  if (!parsed.ok()) return refuse(parsed.status());

  InferResponseBuilder builder((*parsed)->request.id, (*parsed)->binary_output);
  absl::Notification finished;
  absl::Status status;
  const auto cancellation = std::make_shared<Cancellation>();
  call.cancellation = cancellation;
  core.Infer((*parsed)->request, std::move(call),
             [&builder](const InferResult& result) -> absl::StatusOr<float*> {
               return builder.Allocate(result);
             },
             [&status, &finished](absl::Status s) {
               status = std::move(s);
               finished.Notify();
             });
  WaitWatchingThePeer(req, *cancellation, finished);
  if (!status.ok()) return ReplyError(status, res);
  res.status = 200;
  if (builder.header_length() > 0) {
    res.set_header(kHeaderLength, std::to_string(builder.header_length()));
  }
  res.set_header("Content-Type", builder.content_type());
  res.body = builder.Finish();
}

// Answers compressed as the client accepts (gzip or deflate, q-values
// honoured), JSON and binary alike, as Triton does. httplib would gzip or
// brotli JSON answers itself, ignoring q=0 and binary answers: the header
// is kept from it (httplib's Request is not const; handlers get a const
// view) and read here instead.
void CompressAnswers(httplib::Server& s) {
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto& headers = const_cast<httplib::Request&>(req).headers;
    if (auto it = headers.find("Accept-Encoding"); it != headers.end()) {
      headers.emplace(kAcceptEncodingKept, it->second);
      headers.erase("Accept-Encoding");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_post_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty() || res.has_header("Content-Encoding")) return;
    std::optional<Encoding> encoding = ChooseEncoding(req.get_header_value(kAcceptEncodingKept));
    if (!encoding.has_value()) return;
    absl::StatusOr<std::string> compressed = Compress(res.body, *encoding);
    if (!compressed.ok()) return;  // the answer goes out uncompressed
    res.body = *std::move(compressed);
    // httplib has counted the body before this handler runs.
    res.headers.erase("Content-Length");
    res.set_header("Content-Length", std::to_string(res.body.size()));
    res.set_header("Content-Encoding", EncodingName(*encoding));
    res.set_header("Vary", "Accept-Encoding");
  });
}

// httplib's own errors (unknown path 404, body too large 413, unreadable
// request 400) get the KServe error body; handlers' errors keep theirs.
void ErrorBodies(httplib::Server& s) {
  s.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        switch (res.status) {
          case 404:
            message = absl::StrCat("no route ", req.method, " ", req.path);
            break;
          case 413:
            message = "the request body is larger than the server accepts";
            break;
          case 400:  // httplib could not read the request
            message =
                "the request could not be read (a POST needs a Content-Length, even for an "
                "empty body: with curl, -d '')";
            break;
          default:
            message = absl::StrCat("HTTP ", res.status);
        }
        res.set_content(ErrorJson(absl::UnknownError(message)), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              std::shared_ptr<InferenceCore> core) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP threads must be >= 1, not ", options.threads));
  }
  std::unique_ptr<httplib::Server> server;
  if (options.tls.enabled()) {
    absl::StatusOr<TlsPems> pems = LoadTls(options.tls);  // clear errors first
    if (!pems.ok()) return pems.status();
    const TlsOptions& tls = options.tls;
    auto ssl = std::make_unique<httplib::SSLServer>(
        tls.cert_file.c_str(), tls.key_file.c_str(),
        tls.client_ca_file.empty() ? nullptr : tls.client_ca_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError("OpenSSL refused the --tls_cert / --tls_key files");
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  const int threads = options.threads;
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server->set_payload_max_length(options.max_body_bytes);

  std::unique_ptr<HttpServer> http(new HttpServer(std::move(core), std::move(server)));
  http->AddRoutes();
  const int port =
      options.port == 0
          ? http->server_->bind_to_any_port(options.address)
          : (http->server_->bind_to_port(options.address, options.port) ? options.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind HTTP to ", options.address, ":", options.port));
  }
  http->port_ = port;
  httplib::Server* raw = http->server_.get();
  http->listener_ = std::thread([raw] { raw->listen_after_bind(); });
  return http;
}

HttpServer::HttpServer(std::shared_ptr<InferenceCore> core, std::unique_ptr<httplib::Server> server)
    : core_(std::move(core)), server_(std::move(server)) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  server_->stop();  // closes the listening socket; the pool drains and joins
  if (listener_.joinable()) listener_.join();
}

void HttpServer::AddRoutes() {
  httplib::Server& s = *server_;
  InferenceCore& core = *core_;  // outlives the routes (held by this)

  s.Get("/v2/health/live",
        [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  s.Get("/v2/health/ready", [&core](const httplib::Request&, httplib::Response& res) {
    ReplyReady(core.Ready(), res);
  });
  s.Get("/v2", [&core](const httplib::Request& req, httplib::Response& res) {
    if (absl::Status auth = core.Authenticate(req.get_header_value("Authorization")); !auth.ok()) {
      return ReplyError(auth, res);
    }
    res.set_content(ServerMetadataJson(core.ServerMetadata()), kJson);
  });
  AddExtensionRoutes();  // before kModelPath, which "/v2/models/stats" would match
  s.Get(kModelReadyPath, [&core](const httplib::Request& req, httplib::Response& res) {
    ReplyReady(core.ModelReady(req.matches[1].str(), req.matches[2].str()), res);
  });
  s.Get(kModelPath, [&core](const httplib::Request& req, httplib::Response& res) {
    if (absl::Status auth = core.Authenticate(req.get_header_value("Authorization")); !auth.ok()) {
      return ReplyError(auth, res);
    }
    absl::StatusOr<ModelMetadataInfo> info =
        core.ModelMetadata(req.matches[1].str(), req.matches[2].str());
    if (!info.ok()) return ReplyError(info.status(), res);
    res.set_content(ModelMetadataJson(*info), kJson);
  });
  s.Post(kInferPath, [&core](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& content_reader) {
    HandleInfer(core, req, res, content_reader);
  });

  AddSharedMemoryRoutes();

  // The same paths with the other method: 405, as Triton answers.
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    ReplyError(
        absl::InvalidArgumentError(absl::StrCat(req.method, " is not allowed on ", req.path)), res);
    res.status = 405;
  };
  for (const char* path : {"/v2/health/live", "/v2/health/ready", "/v2", kModelReadyPath,
                           kModelPath, kShmStatusPath, kConfigPath, kStatsPath}) {
    s.Post(path, not_allowed);
  }
  for (const char* path :
       {kInferPath, kShmRegisterPath, kShmUnregisterPath, kIndexPath, kLoadPath, kUnloadPath}) {
    s.Get(path, not_allowed);
  }

  CompressAnswers(s);
  ErrorBodies(s);
}

void HttpServer::AddExtensionRoutes() {
  httplib::Server& s = *server_;
  InferenceCore& core = *core_;  // outlives the routes (held by this)
  const auto authenticated = [&core](const httplib::Request& req, httplib::Response& res) {
    absl::Status auth = core.Authenticate(req.get_header_value("Authorization"));
    if (!auth.ok()) ReplyError(auth, res);
    return auth.ok();
  };
  s.Get(kConfigPath, [&core, authenticated](const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<sepconv::ModelConfig> config =
        core.ModelConfig(req.matches[1].str(), req.matches[2].str());
    absl::StatusOr<std::string> json =
        config.ok() ? ModelConfigJson(*config) : absl::StatusOr<std::string>(config.status());
    if (!json.ok()) return ReplyError(json.status(), res);
    res.set_content(*json, kJson);
  });
  s.Get(kStatsPath, [&core, authenticated](const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<std::vector<ModelVersionStats>> stats =
        core.ModelStatistics(req.matches[1].str(), req.matches[2].str());
    if (!stats.ok()) return ReplyError(stats.status(), res);
    res.set_content(ModelStatisticsJson(*stats), kJson);
  });
  s.Post(kIndexPath, [&core, authenticated](const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    absl::StatusOr<bool> ready = ParseIndexBody(req.body);
    if (!ready.ok()) return ReplyError(ready.status(), res);
    res.set_content(RepositoryIndexJson(core.RepositoryIndex(*ready)), kJson);
  });
  // Load and unload run on this pool thread (rare control calls; unload
  // waits for the model's queue to drain).
  s.Post(kLoadPath, [&core, authenticated](const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    const std::string model = req.matches[1].str();
    absl::Status status = core.CheckModelControl(model);
    if (status.ok()) status = CheckLoadBody(req.body);
    if (status.ok()) status = core.LoadModel(model);
    if (!status.ok()) return ReplyError(status, res);
    res.status = 200;
  });
  s.Post(kUnloadPath, [&core, authenticated](const httplib::Request& req, httplib::Response& res) {
    if (!authenticated(req, res)) return;
    absl::Status status = core.UnloadModel(req.matches[1].str());
    if (!status.ok()) return ReplyError(status, res);
    res.status = 200;
  });
}

void HttpServer::AddSharedMemoryRoutes() {
  httplib::Server& s = *server_;
  InferenceCore& core = *core_;  // outlives the routes (held by this)
  s.Get(kShmStatusPath, [&core](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::StatusOr<std::vector<SharedMemoryRegionInfo>> infos =
        (*regions)->Status(req.matches[1].str());
    if (!infos.ok()) return ReplyError(infos.status(), res);
    res.set_content(SharedMemoryStatusJson(*infos), kJson);
  });
  s.Post(kShmRegisterPath, [&core](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::StatusOr<RegisterBody> body = ParseRegisterBody(req.body);
    if (!body.ok()) return ReplyError(body.status(), res);
    absl::Status registered =
        (*regions)->Register(req.matches[1].str(), body->key, body->offset, body->byte_size);
    if (!registered.ok()) return ReplyError(registered, res);
    res.status = 200;
  });
  s.Post(kShmUnregisterPath, [&core](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<SharedMemoryRegistry*> regions = SharedMemoryFor(core, req);
    if (!regions.ok()) return ReplyError(regions.status(), res);
    absl::Status unregistered = (*regions)->Unregister(req.matches[1].str());
    if (!unregistered.ok()) return ReplyError(unregistered, res);
    res.status = 200;
  });
}

}  // namespace sepconv
