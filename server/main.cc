// sepconv-server: serves depthwise-separable convolution models over the
// KServe v2 API, gRPC and REST, with Triton's extensions and Prometheus
// metrics. See --help and docs/architecture.md.

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/batching/cpu_budget.h"
#include "server/core/auth.h"
#include "server/core/request_limits.h"
#include "server/core/request_log.h"
#include "server/core/shared_memory.h"
#include "server/core/tls.h"
#include "server/grpc/grpc_tls.h"
#include "server/grpc/server.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/models/model_registry.h"
#include "server/models/repository_sync.h"
#ifdef SEPCONV_TEST_ENGINE_GATE  // sepconv-server-gated, a test build only
#include "tests/testing/engine_gate.h"
#endif

ABSL_FLAG(std::string, address, "0.0.0.0", "Address to listen on (gRPC, REST and metrics).");
ABSL_FLAG(int, grpc_port, 8001, "gRPC port (KServe v2, health, reflection); 0 picks one.");
ABSL_FLAG(int, http_port, 8000,
          "KServe v2 REST (HTTP/1.1) port, on --address with gRPC's TLS files and tokens; "
          "0 turns REST off.");
ABSL_FLAG(int, http_threads, 0,
          "Threads serving REST: connections' I/O, request parsing and answer making (none "
          "waits for an inference, so any number of requests and connections share them); 0: "
          "one per CPU, at least 2.");
ABSL_FLAG(int64_t, http_max_body_bytes, int64_t{256} << 20,
          "Largest REST request body, in bytes (larger: 413). JSON tensors take about 2.5 times "
          "the bytes of binary ones.");
ABSL_FLAG(int, metrics_port, 8002, "Prometheus /metrics port; 0 turns metrics off.");
ABSL_FLAG(int, threads, 0,
          "Most intra-op threads per engine instance; 0 = the CPUs this process may use "
          "(affinity mask and cgroup quota) divided among the instances. Each input shape's "
          "plan is timed on one thread and on all of these, and runs on the faster.");
ABSL_FLAG(std::string, tuning_cache, "",
          "File that keeps the plan chosen by timing for each input shape (one line per shape "
          "and kind of machine; created if absent). A restart or a replica on the same kind of "
          "machine builds those shapes without timing them: it starts faster and serves each "
          "with the same plan, hence the same bits. Empty: every process times its shapes.");
ABSL_FLAG(int, instances, 1, "Engine workers per model version.");
ABSL_FLAG(int, max_batch_size, 8, "Samples per engine execution; 0 disables batching.");
ABSL_FLAG(int64_t, max_queue_delay_us, 500,
          "How long the first request of a batch may wait for company, at most, in "
          "microseconds.");
ABSL_FLAG(bool, adaptive_queue_delay, true,
          "Wait for company only when requests arrive faster than the engine completes them "
          "and are expected to fill the batch within --max_queue_delay_us; otherwise start at "
          "once. false: always wait up to --max_queue_delay_us (Triton's behaviour).");
ABSL_FLAG(int, max_queue_size, 1024, "Requests queued per model; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::vector<std::string>, preferred_batch_sizes, {},
          "Comma-separated batch sizes that are run as soon as they are reached.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC request or response, in bytes.");
ABSL_FLAG(int, exit_timeout_secs, 30,
          "On SIGTERM/SIGINT, how long queued requests may still finish.");
ABSL_FLAG(int, shutdown_drain_grace_ms, 300,
          "On SIGTERM, once the queues have drained: how long new requests are still taken "
          "(held, then refused UNAVAILABLE, which clients retry) before gRPC stops listening.");
ABSL_FLAG(int, shutdown_goaway_settle_ms, 200,
          "On SIGTERM: how long requests refused meanwhile are held unanswered while gRPC's "
          "GOAWAY reaches the clients (loopback and LAN need far less); raise it for slow links.");
ABSL_FLAG(std::string, model_repository, "",
          "Triton-layout model repository (DIR/<model>/[config.pbtxt], "
          "DIR/<model>/<version>/model.onnx); empty serves the built-in model 'sepconv'.");
ABSL_FLAG(std::string, model_control_mode, "none",
          "'none': load the repository once at startup; 'poll': rescan it every "
          "--repository_poll_secs and load, reload or unload what changed; 'explicit': load "
          "only --load_model models, then what RepositoryModelLoad/Unload (sepconv-client "
          "load/unload) ask for.");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "explicit mode: a model to load at startup ('*': all); repeatable, or "
          "comma-separated.");
ABSL_FLAG(int, repository_poll_secs, 15, "Seconds between repository scans in poll mode.");

// Security and limits.
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain; with --tls_key, gRPC and REST are served over TLS only.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (unencrypted).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; clients must present a certificate it signed (mutual TLS).");
ABSL_FLAG(std::string, auth_token_file, "",
          "Bearer tokens, one per line ('#' comments); re-read on SIGHUP. Inference and "
          "metadata RPCs then need 'authorization: Bearer <token>'; health and liveness stay "
          "open. Empty: no auth.");
ABSL_FLAG(int64_t, max_elements_per_request, int64_t{16} << 20,
          "Largest input, and largest output, of one request in elements; 0 = no limit.");
ABSL_FLAG(int64_t, max_spatial_size, 4096, "Largest input H and W; 0 = no limit.");
ABSL_FLAG(int64_t, max_batch_per_request, 0, "Largest N of one request; 0 = no limit.");
ABSL_FLAG(bool, allow_shared_memory, false,
          "Serve Triton's system shared-memory extension: clients on this host register POSIX "
          "shared-memory objects (/dev/shm) and pass tensors through them instead of the "
          "network. Off by default, as in Triton: any client that may call the server can then "
          "read and write the shared-memory objects this process can open.");
ABSL_FLAG(int, shared_memory_max_regions, 64,
          "Shared-memory regions registered at once (1-4096); more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, shared_memory_max_bytes, int64_t{16} << 30,
          "Bytes of shared memory registered at once; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "Concurrent requests (HTTP/2 streams) per connection; 0 = gRPC's default.");
ABSL_FLAG(int, max_connection_age_secs, 60,
          "Close each client connection (GOAWAY, then reconnect) after about this long, "
          "so clients re-resolve and reach replicas added since; 0 = never.");
ABSL_FLAG(int, max_connection_age_grace_secs, 30,
          "Time calls in flight on an aged connection get to finish; 0 = unlimited.");
ABSL_FLAG(int, stream_max_in_flight, 16,
          "ModelStreamInfer: requests one stream may have in the server at once; at the bound "
          "the server stops reading that stream (HTTP/2 flow control holds the sender).");
ABSL_FLAG(double, failed_request_log_rate, 10,
          "Failed requests logged per second at most (one line each, to stderr); 0 = none.");

#ifdef SEPCONV_TEST_ENGINE_GATE
ABSL_FLAG(std::string, test_engine_gate, "",
          "Test build only: while this file exists, the engine worker parks before each "
          "batch (tests/testing/engine_gate.h).");
#endif

namespace sepconv {
namespace {

// Request and response payloads (hundreds of KB each at the default model's
// 1x32x56x56) stay in malloc's heap when freed and are reused by the next
// call, instead of a fresh mmap, a page fault per 4 KB page and a munmap per
// call (glibc's defaults; ~230 faults per request before, ~2 after at c=1,
// tests/bench/service_bench.py). Freed memory up to the trim threshold stays
// resident. One heap for all threads: with glibc's default of one per thread
// (up to 8 per CPU), each gRPC thread's first request read its bytes into
// fresh pages of its own heap (about 400 page faults per 1.6 MB, then as
// many first accesses, 1.5-2 ms on a VM: docs/performance.md "Warm-up"),
// which the warm-up, run on another thread, could not map ahead. Measured
// no slower at 1 and 16 clients once ModelInfer's large buffers were pooled
// (server/grpc/infer_buffers.h). Must run before other threads start.
void KeepPayloadBuffersInTheHeap() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_ARENA_MAX, 1);
}

// The first time a thread is queued on an absl::Mutex behind another
// waiter (a request's Submit, which holds the scheduler's mutex, waking the
// engine worker and the reaper), Abseil reads the cycle-counter frequency
// once for the process; without /sys/devices/system/cpu/cpu0/tsc_freq_khz
// (VMs) it measures it by sleeping 1 ms, then 2 ms, with the mutex held:
// the server's first request paid 3.5 ms of queue time for it. Done here,
// before serving, the same way: two waiters woken while the mutex is held.
void WarmMutexQueue() {
  absl::Mutex mu;
  absl::CondVar cv;
  int waiting = 0;
  bool done = false;
  auto wait = [&] {
    absl::MutexLock lock(&mu);
    ++waiting;
    while (!done) cv.Wait(&mu);
  };
  std::thread first(wait), second(wait);
  {
    absl::MutexLock lock(&mu);
    auto both_waiting = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return waiting == 2; };
    mu.Await(absl::Condition(&both_waiting));
    done = true;
    cv.SignalAll();  // both now queue on the mutex this thread holds
  }
  first.join();
  second.join();
}

// The signal handler only writes to this pipe; the main thread does the work.
int signal_pipe[2] = {-1, -1};

void OnSignal(int signo) {
  const char byte = static_cast<char>(signo);
  const int saved = errno;
  [[maybe_unused]] ssize_t n = write(signal_pipe[1], &byte, 1);
  errno = saved;
}

absl::Status InstallSignalHandlers() {
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signo : {SIGTERM, SIGINT, SIGHUP}) {
    if (sigaction(signo, &action, nullptr) != 0) {
      return absl::InternalError(absl::StrCat("sigaction: ", strerror(errno)));
    }
  }
  // A write to a client that hung up fails with EPIPE instead of killing the
  // process (OpenSSL writes TLS records with write(), without MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  return absl::OkStatus();
}

// Blocks until SIGTERM or SIGINT; returns the signal.
int WaitForSignal() {
  for (;;) {
    pollfd fd = {signal_pipe[0], POLLIN, 0};
    if (poll(&fd, 1, -1) < 0 && errno != EINTR) return 0;
    char byte = 0;
    if (read(signal_pipe[0], &byte, 1) == 1) return byte;
  }
}

// Every --load_model on the command line: Abseil keeps only a flag's last
// occurrence, while --load_model repeats (as Triton's --load-model does).
std::vector<std::string> LoadModelArgs(int argc, char** argv) {
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if ((arg == "--load_model" || arg == "-load_model") && i + 1 < argc) {
      arg = argv[++i];
    } else if (!absl::ConsumePrefix(&arg, "--load_model=") &&
               !absl::ConsumePrefix(&arg, "-load_model=")) {
      continue;
    }
    for (absl::string_view name : absl::StrSplit(arg, ',', absl::SkipEmpty())) {
      names.emplace_back(name);
    }
  }
  return names;
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.instances = absl::GetFlag(FLAGS_instances);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.exit_timeout = absl::Seconds(absl::GetFlag(FLAGS_exit_timeout_secs));
  options.max_connection_age = absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_secs));
  options.max_connection_age_grace =
      absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_grace_secs));
  if (options.max_connection_age < absl::ZeroDuration() ||
      options.max_connection_age_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--max_connection_age_secs and --max_connection_age_grace_secs must be >= 0");
  }
  if (options.instances < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--instances=", options.instances, " must be at least 1"));
  }
  if (absl::GetFlag(FLAGS_exit_timeout_secs) < 0) {
    return absl::InvalidArgumentError("--exit_timeout_secs must be >= 0");
  }
  if (absl::GetFlag(FLAGS_shutdown_drain_grace_ms) < 0 ||
      absl::GetFlag(FLAGS_shutdown_goaway_settle_ms) < 0) {
    return absl::InvalidArgumentError(
        "--shutdown_drain_grace_ms and --shutdown_goaway_settle_ms must be >= 0");
  }
  options.drain_grace = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_drain_grace_ms));
  options.goaway_settle = absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_goaway_settle_ms));
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads=", options.threads, " must be >= 0"));
  }
  if (options.threads == 0) options.threads = DefaultEngineThreads(UsableCpus(), options.instances);

  SchedulerOptions& scheduler = options.scheduler;
  scheduler.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  scheduler.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  scheduler.adaptive_queue_delay = absl::GetFlag(FLAGS_adaptive_queue_delay);
  scheduler.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  if (scheduler.max_batch_size < 0 || absl::GetFlag(FLAGS_max_queue_delay_us) < 0 ||
      scheduler.max_queue_size < 1) {
    return absl::InvalidArgumentError(
        "--max_batch_size and --max_queue_delay_us must be >= 0, --max_queue_size >= 1");
  }
  for (const std::string& text : absl::GetFlag(FLAGS_preferred_batch_sizes)) {
    int size = 0;
    if (!absl::SimpleAtoi(text, &size) || size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--preferred_batch_sizes: '", text, "' is not a positive integer"));
    }
    scheduler.preferred_batch_sizes.push_back(size);
  }
#ifdef SEPCONV_TEST_ENGINE_GATE
  scheduler.before_batch = testing::ParkWhileGateClosed(absl::GetFlag(FLAGS_test_engine_gate));
#endif
  return options;
}

// TLS credentials, token auth, the failed-request log and request limits.
absl::Status AddSecurityOptions(ServerOptions* options) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials({absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                             absl::GetFlag(FLAGS_tls_client_ca)});
  if (!credentials.ok()) return credentials.status();
  options->credentials = *std::move(credentials);
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::unique_ptr<TokenAuthenticator>> auth =
        TokenAuthenticator::FromFile(absl::GetFlag(FLAGS_auth_token_file));
    if (!auth.ok()) return auth.status();
    options->core.auth = *std::move(auth);
  }
  if (absl::GetFlag(FLAGS_failed_request_log_rate) > 0) {
    RequestLogOptions log;
    log.lines_per_second = absl::GetFlag(FLAGS_failed_request_log_rate);
    log.burst = 2 * log.lines_per_second;
    options->core.request_log = std::make_shared<RequestLog>(log);
  }
  if (absl::GetFlag(FLAGS_allow_shared_memory)) {
    SharedMemoryOptions shm;
    shm.max_regions = absl::GetFlag(FLAGS_shared_memory_max_regions);
    const int64_t max_bytes = absl::GetFlag(FLAGS_shared_memory_max_bytes);
    if (shm.max_regions < 1 || shm.max_regions > kMaxSharedMemoryRegions || max_bytes < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shared_memory_max_regions must be 1-", kMaxSharedMemoryRegions,
          " and --shared_memory_max_bytes >= 1 (got ", shm.max_regions, ", ", max_bytes, ")"));
    }
    shm.max_bytes = static_cast<uint64_t>(max_bytes);
    options->core.shared_memory = std::make_shared<SharedMemoryRegistry>(shm);
  }
  RequestLimits& limits = options->core.limits;
  limits.max_elements = absl::GetFlag(FLAGS_max_elements_per_request);
  limits.max_spatial_size = absl::GetFlag(FLAGS_max_spatial_size);
  limits.max_batch = absl::GetFlag(FLAGS_max_batch_per_request);
  options->max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options->service.stream_max_in_flight = absl::GetFlag(FLAGS_stream_max_in_flight);
  if (options->service.stream_max_in_flight < 1) {
    return absl::InvalidArgumentError("--stream_max_in_flight must be at least 1");
  }
  if (limits.max_elements < 0 || limits.max_spatial_size < 0 || limits.max_batch < 0 ||
      options->max_concurrent_streams < 0) {
    return absl::InvalidArgumentError(
        "--max_elements_per_request, --max_spatial_size, --max_batch_per_request and "
        "--max_concurrent_streams must be >= 0");
  }
  return absl::OkStatus();
}

// SIGHUP: re-read the token file; on error the old tokens stay in force.
void ReloadTokens(const ServerOptions& options) {
  const std::shared_ptr<TokenAuthenticator>& auth = options.core.auth;
  if (auth == nullptr) {
    std::fprintf(stderr, "sepconv-server: SIGHUP: no --auth_token_file to reload\n");
    return;
  }
  absl::Status s = auth->Reload();
  if (s.ok()) {
    std::fprintf(stderr, "sepconv-server: SIGHUP: reloaded %d token(s)\n", auth->token_count());
  } else {
    std::fprintf(stderr, "sepconv-server: SIGHUP: keeping the current tokens: %s\n",
                 s.ToString().c_str());
  }
}

// Exit statuses of sepconv-server.
constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// Every option from the flags, security included.
absl::StatusOr<ServerOptions> AllOptionsFromFlags() {
  absl::StatusOr<ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) return options.status();
  if (absl::Status s = AddSecurityOptions(&*options); !s.ok()) return s;
  return options;
}

// How the models are found: --model_repository (empty: the built-in model)
// and --model_control_mode.
struct ModelSource {
  std::string repository;
  std::string mode;  // none, poll or explicit
};

// --model_control_mode, --load_model and --repository_poll_secs checked
// against one another; INVALID_ARGUMENT says which is wrong.
absl::StatusOr<ModelSource> ModelSourceFromFlags(const std::vector<std::string>& load_models) {
  ModelSource source{absl::GetFlag(FLAGS_model_repository),
                     absl::GetFlag(FLAGS_model_control_mode)};
  const std::string& mode = source.mode;
  if (mode != "none" && mode != "poll" && mode != "explicit") {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_control_mode='", mode, "': expected none, poll or explicit"));
  }
  if (mode == "explicit" && source.repository.empty()) {
    return absl::InvalidArgumentError("--model_control_mode=explicit needs --model_repository");
  }
  if (mode != "explicit" && !load_models.empty()) {
    return absl::InvalidArgumentError("--load_model needs --model_control_mode=explicit");
  }
  if (mode == "poll" && absl::GetFlag(FLAGS_repository_poll_secs) < 1) {
    return absl::InvalidArgumentError("--repository_poll_secs must be >= 1");
  }
  return source;
}

// Fills `registry`: the built-in model (then null), or the repository's
// models kept in sync by the returned RepositorySync, which `options` then
// also holds as the core's RepositoryControl. Prints why on failure.
absl::StatusOr<std::shared_ptr<RepositorySync>> LoadModels(
    const ModelSource& source, const std::vector<std::string>& load_models, ServerOptions& options,
    Metrics* metrics, const std::shared_ptr<ModelRegistry>& registry) {
  if (source.repository.empty()) {
    if (absl::Status s = AddDefaultModel(options, metrics, registry.get()); !s.ok()) {
      std::fprintf(stderr, "sepconv-server: default model: %s\n", s.ToString().c_str());
      return s;
    }
    return nullptr;
  }
  const absl::Duration interval = source.mode == "poll"
                                      ? absl::Seconds(absl::GetFlag(FLAGS_repository_poll_secs))
                                      : absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<RepositorySync>> started =
      source.mode == "explicit"
          ? RepositorySync::StartExplicit(source.repository, options, metrics, registry,
                                          load_models)
          : RepositorySync::Start(source.repository, options, metrics, registry, interval);
  if (!started.ok()) {
    std::fprintf(stderr, "sepconv-server: --model_repository: %s\n",
                 started.status().ToString().c_str());
    return started.status();
  }
  std::shared_ptr<RepositorySync> sync = *std::move(started);
  options.core.control = sync;  // RepositoryIndex, RepositoryModelLoad/Unload
  return sync;
}

// The REST frontend on --http_port, sharing `server`'s core; null when the
// port is 0.
absl::StatusOr<std::unique_ptr<HttpServer>> StartHttp(const ServerOptions& options,
                                                      const Server& server) {
  const int http_port = absl::GetFlag(FLAGS_http_port);
  if (http_port == 0) return nullptr;
  if (absl::GetFlag(FLAGS_http_max_body_bytes) < 1) {
    return absl::InvalidArgumentError("--http_max_body_bytes must be >= 1");
  }
  HttpServerOptions http_options;
  http_options.address = options.address;
  http_options.port = http_port;
  http_options.threads = absl::GetFlag(FLAGS_http_threads);
  http_options.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_http_max_body_bytes));
  http_options.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                      absl::GetFlag(FLAGS_tls_client_ca)};
  return HttpServer::Start(http_options, server.core());
}

// Blocks until SIGTERM or SIGINT (SIGHUP reloads the tokens meanwhile), then
// stops the repository sync and both frontends.
void ServeUntilSignal(const ServerOptions& options, RepositorySync* sync, Server& server,
                      HttpServer* http) {
  int signo = WaitForSignal();
  for (; signo == SIGHUP; signo = WaitForSignal()) ReloadTokens(options);
  std::fprintf(stderr, "sepconv-server: signal %d, shutting down (up to %ds)\n", signo,
               absl::GetFlag(FLAGS_exit_timeout_secs));
  if (sync != nullptr) sync->Stop();
  // The core's shutdown (readiness false, REST refusals 503) starts in the
  // gRPC server's; REST then stops accepting and answers what is in flight.
  server.Shutdown();
  if (http != nullptr) http->Shutdown();
  std::fprintf(stderr, "sepconv-server: stopped\n");
}

int Run(const std::vector<std::string>& load_models) {
  absl::StatusOr<ServerOptions> options = AllOptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", options.status().ToString().c_str());
    return kExitUsage;
  }
  if (absl::Status s = InstallSignalHandlers(); !s.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  if (absl::Status s = UseTuningCache(absl::GetFlag(FLAGS_tuning_cache)); !s.ok()) {
    std::fprintf(stderr, "sepconv-server: --tuning_cache: %s\n", s.ToString().c_str());
    return kExitFailed;
  }
  std::unique_ptr<Metrics> metrics = options->metrics_port != 0 ? Metrics::Create() : nullptr;
  auto registry = std::make_shared<ModelRegistry>();
  absl::StatusOr<ModelSource> source = ModelSourceFromFlags(load_models);
  if (!source.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", std::string(source.status().message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<RepositorySync>> sync =
      LoadModels(*source, load_models, *options, metrics.get(), registry);
  if (!sync.ok()) return kExitFailed;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(*options, registry, metrics.get());
  if (!server.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", server.status().ToString().c_str());
    return kExitFailed;
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> http = StartHttp(*options, **server);
  if (!http.ok()) {
    std::fprintf(stderr, "sepconv-server: --http_port: %s\n", http.status().ToString().c_str());
    (*server)->Shutdown();
    return kExitFailed;
  }
  if (*http != nullptr) {
    std::fprintf(stderr, "sepconv-server: KServe v2 REST on HTTP port %d\n", (*http)->port());
  }
  std::fprintf(stderr,
               "sepconv-server: serving models [%s] on gRPC port %d, metrics port %d "
               "(%d instance(s) x %d thread(s))\n",
               absl::StrJoin(registry->ModelNames(), ", ").c_str(), (*server)->grpc_port(),
               (*server)->metrics_port(), options->instances, options->threads);
  ServeUntilSignal(*options, sync->get(), **server, http->get());
  return kExitOk;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  sepconv::KeepPayloadBuffersInTheHeap();
  sepconv::WarmMutexQueue();
  // --help lists this file's flags (Abseil's default looks for a file named
  // after the binary).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Serves depthwise-separable convolution models over the KServe v2 gRPC and REST APIs.\n"
      "Usage: sepconv-server [--http_port=8000] [--grpc_port=8001] [--metrics_port=8002] "
      "[--model_repository=DIR] [--max_batch_size=8] ...\n"
      "With no --model_repository it serves the built-in model 'sepconv' "
      "(32 -> 64 channels, 3x3, stride 1).");
  absl::ParseCommandLine(argc, argv);
  return sepconv::Run(sepconv::LoadModelArgs(argc, argv));
}
