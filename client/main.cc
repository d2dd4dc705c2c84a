// sepconv-client: health, metadata, infer and bench against a KServe v2 server, and Triton's
// config, stats, index, load and unload; over gRPC (the default) or, with --protocol=http, over
// HTTP/REST (the server's --http_port), so that one tool compares the two as perf_analyzer's
// -i grpc|http does. Exit status: 0 success, 1 failure (the server said no, or could not be
// reached), 2 bad usage (also a gRPC-only flag with --protocol=http). Every failure prints one
// line on stderr.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/bench.h"
#include "client/bench_report.h"
#include "client/client.h"
#include "client/npy.h"
#include "client/shared_memory.h"
#include "client/tensor.h"

ABSL_FLAG(std::string, protocol, "grpc",
          "grpc, or http: KServe v2 REST on the server's --http_port (tensors as binary tensor "
          "data unless --json_tensors; no --streaming, --typed, --lb_policy or gRPC target forms)");
ABSL_FLAG(std::string, server, "",
          "gRPC target: host:port, dns:///host:port (every address the name has, "
          "e.g. a headless Service), or ipv4:10.0.0.1:8001,10.0.0.2:8001 (a list); "
          "with --protocol=http one host:port. Empty: localhost:8001, http localhost:8000");
ABSL_FLAG(std::string, lb_policy, "round_robin",
          "how calls spread over the target's addresses: round_robin (every "
          "replica, in turn) or pick_first (all to one)");
ABSL_FLAG(int32_t, max_attempts, 5,
          "tries of a call that ends UNAVAILABLE (replica restarting), 1-5; 1 = no retry");
ABSL_FLAG(std::string, model, "sepconv", "model name");
ABSL_FLAG(std::string, model_version, "", "model version (empty: the server's choice)");
ABSL_FLAG(int64_t, timeout_ms, 10000, "deadline of each call, milliseconds");
ABSL_FLAG(bool, tls, false, "use TLS (verify the server against --tls_ca or system roots)");
ABSL_FLAG(std::string, tls_ca, "", "PEM file of the CA that signed the server's certificate");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for mutual TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "", "name expected in the server's certificate");
ABSL_FLAG(std::string, token, "", "bearer token sent as 'authorization: Bearer <token>'");
ABSL_FLAG(std::string, token_file, "", "file holding the bearer token (instead of --token)");
ABSL_FLAG(std::string, service, "",
          "health: service to check (empty: the whole server; or a model name)");
ABSL_FLAG(std::string, input, "", "input tensor as a .npy file (little-endian float32, C order)");
ABSL_FLAG(std::string, shape, "", "random input of this shape, e.g. 1,32,56,56");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random input and of Poisson arrivals");
ABSL_FLAG(std::string, output, "", "infer: write the output tensor to this .npy file");
ABSL_FLAG(bool, typed, false, "send typed fp32_contents instead of raw_input_contents (gRPC)");
ABSL_FLAG(bool, json_tensors, false,
          "with --protocol=http: send and receive tensors as JSON \"data\" instead of binary "
          "tensor data");
ABSL_FLAG(
    std::string, shared_memory, "none",
    "where the tensors travel: none (in the requests and answers) or system (POSIX shared memory "
    "this client creates, registers with the server and removes at the end, as "
    "perf_analyzer's --shared-memory=system; the server must run on this host and allow it). "
    "bench reserves one output per request in flight (--rate: --max_in_flight of them). "
    "Not with --typed or --streaming");
ABSL_FLAG(int64_t, output_shared_memory_size, 0,
          "with --shared_memory=system: bytes reserved for each output (0: from the model's "
          "metadata, a variable dimension taken as the input's at the same index)");
ABSL_FLAG(std::string, concurrency, "1,2,4,8,16", "bench: closed-loop requests in flight, a list");
ABSL_FLAG(std::string, rate, "", "bench: open-loop requests/s, a list (replaces --concurrency)");
ABSL_FLAG(std::string, arrival, "constant", "bench: open-loop arrivals, constant or poisson");
ABSL_FLAG(int64_t, warmup_ms, 500, "bench: warm-up before measuring each step, ms");
ABSL_FLAG(int64_t, window_ms, 1000, "bench: length of a measurement window, ms");
ABSL_FLAG(int32_t, max_windows, 10, "bench: windows per step at most");
ABSL_FLAG(double, stability_pct, 10, "bench: last 3 windows within this % of their mean");
ABSL_FLAG(int32_t, channels, 1, "bench: gRPC connections to spread requests over");
ABSL_FLAG(bool, streaming, false,
          "bench: send over ModelStreamInfer, one stream per channel (concurrency = requests in "
          "flight on the streams), instead of unary ModelInfer");
ABSL_FLAG(int32_t, max_in_flight, 1024, "bench: open-loop limit of requests in flight");
ABSL_FLAG(int64_t, drain_timeout_ms, 0,
          "bench: how long a step waits for its last requests before failing, ms "
          "(0: --timeout_ms + 5000)");
ABSL_FLAG(std::string, metrics_url, "",
          "bench: server's Prometheus endpoint for the queue/compute split, "
          "e.g. http://localhost:8002/metrics");
ABSL_FLAG(bool, ready, false, "index: list only the models ready for inference");
ABSL_FLAG(std::string, csv, "", "bench: write CSV here ('-' for stdout)");
ABSL_FLAG(std::string, json, "", "bench: write JSON here ('-' for stdout)");
ABSL_FLAG(std::string, plot, "", "bench: write a latency-vs-throughput PNG here (needs gnuplot)");

namespace sepconv::client {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

const std::vector<std::string> kConnectionFlags = {
    "protocol", "server",   "lb_policy", "max_attempts",    "timeout_ms", "tls",
    "tls_ca",   "tls_cert", "tls_key",   "tls_server_name", "token",      "token_file"};

struct Command {
  std::string name;
  std::string summary;
  std::vector<std::string> flags;
};

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"health", "exit 0 if the server (or --service) is SERVING, else 1", {"service"}},
      {"metadata", "print server and model metadata and readiness", {"model", "model_version"}},
      {"infer",
       "run one inference; print output shape, min/max/mean and latency",
       {"model", "model_version", "input", "shape", "seed", "output", "typed", "shared_memory",
        "output_shared_memory_size", "json_tensors"}},
      {"bench",
       "load generator: closed-loop concurrency sweep or open-loop rates",
       {"model",
        "model_version",
        "input",
        "shape",
        "seed",
        "typed",
        "concurrency",
        "rate",
        "arrival",
        "warmup_ms",
        "window_ms",
        "max_windows",
        "stability_pct",
        "channels",
        "max_in_flight",
        "streaming",
        "drain_timeout_ms",
        "metrics_url",
        "csv",
        "json",
        "plot",
        "shared_memory",
        "output_shared_memory_size",
        "json_tensors"}},
      {"config",
       "print the model's effective configuration (config.pbtxt text format)",
       {"model", "model_version"}},
      {"stats",
       "print cumulative statistics per model version (all models unless --model)",
       {"model", "model_version"}},
      {"index", "list the repository's models, their versions and states", {"ready"}},
      {"load", "load or reload --model from the repository (server in explicit mode)", {"model"}},
      {"unload",
       "unload --model after its queued requests finish (server in explicit mode)",
       {"model"}},
  };
  return *commands;
}

std::string FlagHelp(const std::string& name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return "";
  return absl::StrFormat("  --%-16s %s (default: \"%s\")\n", name, flag->Help(),
                         flag->DefaultValue());
}

std::string Usage(const std::string& command) {
  std::string out;
  for (const Command& c : Commands()) {
    if (!command.empty() && c.name != command) continue;
    if (command.empty()) {
      absl::StrAppend(&out, absl::StrFormat("  %-9s %s\n", c.name, c.summary));
      continue;
    }
    absl::StrAppend(&out, "usage: sepconv-client ", c.name, " [flags]\n", c.summary,
                    "\n\nflags:\n");
    for (const std::string& f : c.flags) out += FlagHelp(f);
    out += "\nconnection flags:\n";
    for (const std::string& f : kConnectionFlags) out += FlagHelp(f);
    return out;
  }
  return absl::StrCat("usage: sepconv-client <command> [flags]\n\ncommands:\n", out,
                      "\n'sepconv-client <command> --help' lists a command's flags.\n");
}

int Fail(const std::string& command, const absl::Status& status) {
  std::cerr << "sepconv-client " << command << ": " << absl::StatusCodeToString(status.code())
            << ": " << status.message() << "\n";
  return kFailed;
}

int UsageError(const std::string& command, absl::string_view message) {
  std::cerr << "sepconv-client " << command << ": " << message << " (see 'sepconv-client "
            << command << " --help')\n";
  return kUsage;
}

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--", flag, ": cannot read '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Refuses the flags of the other protocol: gRPC's streaming, typed contents,
// load balancing and target forms with --protocol=http, JSON tensors without.
absl::Status CheckProtocolFlags(const ClientOptions& options) {
  if (options.protocol != Protocol::kHttp) {
    if (options.http_json)
      return absl::InvalidArgumentError("--json_tensors needs --protocol=http");
    return absl::OkStatus();
  }
  for (const auto& [flag, set] :
       {std::pair{"streaming", absl::GetFlag(FLAGS_streaming)},
        std::pair{"typed", absl::GetFlag(FLAGS_typed)},
        std::pair{"lb_policy", options.lb_policy != LbPolicy::kRoundRobin}}) {
    if (set) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " is gRPC only, not with --protocol=http",
                       std::string(flag) == "typed" ? " (see --json_tensors)" : ""));
    }
  }
  const std::string server = absl::GetFlag(FLAGS_server);
  if (absl::StrContains(server, ",") || absl::StrContains(server, "://") ||
      absl::StartsWith(server, "ipv4:") || absl::StartsWith(server, "ipv6:") ||
      absl::StartsWith(server, "unix:") || absl::StartsWith(server, "dns:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server='", server, "': with --protocol=http give one host:port"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClientOptions> OptionsFromFlags() {
  ClientOptions options;
  options.use_tls = absl::GetFlag(FLAGS_tls);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  const std::tuple<std::string, std::string, std::string*> files[] = {
      {"tls_ca", absl::GetFlag(FLAGS_tls_ca), &options.root_certs_pem},
      {"tls_cert", absl::GetFlag(FLAGS_tls_cert), &options.client_cert_pem},
      {"tls_key", absl::GetFlag(FLAGS_tls_key), &options.client_key_pem},
  };
  for (const auto& [flag, path, field] : files) {
    if (path.empty()) continue;
    if (!options.use_tls)
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " needs --tls"));
    absl::StatusOr<std::string> text = ReadFile(flag, path);
    if (!text.ok()) return text.status();
    *field = *text;
  }
  options.token = absl::GetFlag(FLAGS_token);
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    absl::StatusOr<std::string> token = ReadFile("token_file", path);
    if (!token.ok()) return token.status();
    options.token = std::string(absl::StripAsciiWhitespace(*token));
  }
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (timeout_ms <= 0) return absl::InvalidArgumentError("--timeout_ms must be positive");
  options.default_deadline = absl::Milliseconds(timeout_ms);
  absl::StatusOr<LbPolicy> lb_policy = ParseLbPolicy(absl::GetFlag(FLAGS_lb_policy));
  if (!lb_policy.ok())
    return absl::InvalidArgumentError(absl::StrCat("--lb_policy: ", lb_policy.status().message()));
  options.lb_policy = *lb_policy;
  options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (options.max_attempts < 1 || options.max_attempts > 5) {
    return absl::InvalidArgumentError("--max_attempts must be 1 to 5");
  }
  absl::StatusOr<Protocol> protocol = ParseProtocol(absl::GetFlag(FLAGS_protocol));
  if (!protocol.ok())
    return absl::InvalidArgumentError(absl::StrCat("--protocol: ", protocol.status().message()));
  options.protocol = *protocol;
  options.http_json = absl::GetFlag(FLAGS_json_tensors);
  if (absl::Status s = CheckProtocolFlags(options); !s.ok()) return s;
  return options;
}

// --server, or the default port of the protocol.
std::string ServerFromFlags(const ClientOptions& options) {
  const std::string server = absl::GetFlag(FLAGS_server);
  if (!server.empty()) return server;
  return options.protocol == Protocol::kHttp ? "localhost:8000" : "localhost:8001";
}

// The input tensor: --input file or a random tensor of --shape.
absl::StatusOr<Tensor> InputFromFlags() {
  const std::string input = absl::GetFlag(FLAGS_input);
  const std::string shape = absl::GetFlag(FLAGS_shape);
  if (input.empty() == shape.empty()) {
    return absl::InvalidArgumentError("give exactly one of --input=FILE.npy or --shape=N,C,H,W");
  }
  if (!input.empty()) return ReadNpy(input);
  absl::StatusOr<std::vector<int64_t>> dims = ParseShape(shape);
  if (!dims.ok())
    return absl::InvalidArgumentError(absl::StrCat("--shape: ", dims.status().message()));
  return RandomTensor(*dims, absl::GetFlag(FLAGS_seed));
}

// Whether --shared_memory asks for system shared memory; INVALID_ARGUMENT for
// an unknown value or one of the flags it excludes.
absl::StatusOr<bool> SystemSharedMemoryFromFlags() {
  const std::string mode = absl::GetFlag(FLAGS_shared_memory);
  if (mode == "none") return false;
  if (mode != "system") {
    return absl::InvalidArgumentError(
        absl::StrCat("--shared_memory: '", mode, "' is not none or system"));
  }
  if (absl::GetFlag(FLAGS_typed)) {
    return absl::InvalidArgumentError(
        "--shared_memory=system sends no values in the request: not with --typed");
  }
  if (absl::GetFlag(FLAGS_streaming)) {
    return absl::InvalidArgumentError(
        "--shared_memory=system is for unary calls: not with "
        "--streaming");
  }
  if (absl::GetFlag(FLAGS_output_shared_memory_size) < 0) {
    return absl::InvalidArgumentError("--output_shared_memory_size must not be negative");
  }
  return true;
}

// The model's first output: its name and the bytes it takes for `input`
// (--output_shared_memory_size, else from the metadata, each variable
// dimension taken as the input's at the same index).
absl::StatusOr<std::pair<std::string, int64_t>> OutputSize(Client& client, const Tensor& input) {
  absl::StatusOr<ModelInfo> info =
      client.ModelMetadata(absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_model_version));
  if (!info.ok()) return info.status();
  if (info->outputs.empty()) return absl::FailedPreconditionError("the model has no outputs");
  const TensorInfo& output = info->outputs[0];
  if (const int64_t flag = absl::GetFlag(FLAGS_output_shared_memory_size); flag > 0) {
    return std::pair{output.name, flag};
  }
  std::vector<int64_t> shape = output.shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] >= 0) continue;
    if (i >= input.shape.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot size output ", ShapeString(output.shape),
                       " from the input's shape: give --output_shared_memory_size"));
    }
    shape[i] = input.shape[i];
  }
  absl::StatusOr<int64_t> count = ElementCount(shape);
  if (!count.ok()) return count.status();
  return std::pair{output.name, std::max<int64_t>(*count, 1) * int64_t{sizeof(float)}};
}

// --shared_memory=system: an input region holding the input (written once)
// and an output region of `slices` slices, one per request in flight, each
// created here under a unique key and registered with the server under that
// key's name. The destructor unregisters them, then the regions unlink
// themselves: on every path out, error or not. The Client must outlive it.
class SystemSharedMemory {
 public:
  static absl::StatusOr<std::unique_ptr<SystemSharedMemory>> Create(Client* client,
                                                                    const Tensor& input,
                                                                    int slices) {
    absl::StatusOr<std::pair<std::string, int64_t>> output = OutputSize(*client, input);
    if (!output.ok()) return output.status();
    auto shm = std::unique_ptr<SystemSharedMemory>(new SystemSharedMemory(client));
    shm->output_tensor_ = output->first;
    // Each slice 64-byte aligned (the server wants 4).
    shm->slice_bytes_ = (output->second + 63) / 64 * 64;
    shm->input_bytes_ = static_cast<int64_t>(input.data.size() * sizeof(float));
    const std::string base = absl::StrFormat("sepconv_client_%d_%08x", getpid(),
                                             static_cast<uint32_t>(std::random_device()()));
    shm->input_name_ = absl::StrCat(base, "_in");
    shm->output_name_ = absl::StrCat(base, "_out");
    absl::StatusOr<SharedMemoryRegion> in = shm->Add(shm->input_name_, shm->input_bytes_);
    if (!in.ok()) return in.status();
    shm->input_ = *std::move(in);
    std::memcpy(shm->input_->data(), input.data.data(), shm->input_bytes_);
    absl::StatusOr<SharedMemoryRegion> out =
        shm->Add(shm->output_name_, shm->slice_bytes_ * slices);
    if (!out.ok()) return out.status();
    shm->output_ = *std::move(out);
    return shm;
  }

  ~SystemSharedMemory() {
    for (const std::string& name : registered_) {
      if (absl::Status s = client_->UnregisterSystemSharedMemory(name); !s.ok()) {
        std::cerr << "sepconv-client: warning: shared-memory region '" << name
                  << "' stays registered: " << s << "\n";
      }
    }
  }

  // Options that place the input and the output of request `slice`.
  InferOptions Options(int slice) const {
    InferOptions options;
    options.input_shared_memory = SharedMemoryPlacement{input_name_, 0, input_bytes_};
    options.output_shared_memory =
        SharedMemoryPlacement{output_name_, slice * slice_bytes_, slice_bytes_};
    options.output_name = output_tensor_;
    options.output_view = absl::MakeConstSpan(output_->data() + slice * slice_bytes_, slice_bytes_);
    return options;
  }

 private:
  explicit SystemSharedMemory(Client* client) : client_(client) {}

  // Creates the region "/<name>" and registers it whole under `name`.
  absl::StatusOr<SharedMemoryRegion> Add(const std::string& name, int64_t bytes) {
    absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create("/" + name, bytes);
    if (!region.ok()) return region.status();
    if (absl::Status s = client_->RegisterSystemSharedMemory(name, region->key(), 0, bytes);
        !s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat("registering shared memory '", region->key(), "': ", s.message()));
    }
    registered_.push_back(name);
    return region;
  }

  Client* const client_;
  std::vector<std::string> registered_;               // unregistered by the destructor
  std::optional<SharedMemoryRegion> input_, output_;  // then unlinked
  std::string input_name_, output_name_;              // as registered
  std::string output_tensor_;                         // the model's output
  int64_t input_bytes_ = 0, slice_bytes_ = 0;
};

int Health(Client& client) {
  absl::StatusOr<std::string> status = client.Health(absl::GetFlag(FLAGS_service));
  if (!status.ok()) return Fail("health", status.status());
  std::cout << *status << "\n";
  if (*status != "SERVING") {
    return Fail("health", absl::UnavailableError(absl::StrCat(
                              "service '", absl::GetFlag(FLAGS_service), "' is ", *status)));
  }
  return kOk;
}

int Metadata(Client& client) {
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string version = absl::GetFlag(FLAGS_model_version);
  absl::StatusOr<ServerInfo> server = client.ServerMetadata();
  if (!server.ok()) return Fail("metadata", server.status());
  std::cout << "server: " << server->name << " " << server->version << "\n"
            << "extensions: " << absl::StrJoin(server->extensions, ", ") << "\n";
  absl::StatusOr<ModelInfo> info = client.ModelMetadata(model, version);
  if (!info.ok()) return Fail("metadata", info.status());
  std::cout << "model: " << info->name << "\nversions: " << absl::StrJoin(info->versions, ", ")
            << "\nplatform: " << info->platform << "\n";
  for (const auto& [kind, tensors] :
       {std::pair{"input", &info->inputs}, {"output", &info->outputs}}) {
    for (const TensorInfo& t : *tensors) {
      std::cout << kind << ": " << t.name << " " << t.datatype << " " << ShapeString(t.shape)
                << "\n";
    }
  }
  absl::StatusOr<bool> ready = client.ModelReady(model, version);
  if (!ready.ok()) return Fail("metadata", ready.status());
  std::cout << "ready: " << (*ready ? "true" : "false") << "\n";
  return kOk;
}

int Config(Client& client) {
  absl::StatusOr<std::string> config =
      client.ModelConfigText(absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_model_version));
  if (!config.ok()) return Fail("config", config.status());
  std::cout << *config;
  return kOk;
}

// "count / mean us" of a cumulative duration.
std::string Mean(const DurationStat& d) {
  if (d.count == 0) return "0";
  return absl::StrFormat("%d / %.1f us", d.count, static_cast<double>(d.ns) / d.count / 1e3);
}

// Whether --model was on the command line (stats: otherwise every model).
bool model_given = false;

int Stats(Client& client) {
  const std::string model = model_given ? absl::GetFlag(FLAGS_model) : "";
  absl::StatusOr<std::vector<ModelStats>> stats =
      client.ModelStatistics(model, absl::GetFlag(FLAGS_model_version));
  if (!stats.ok()) return Fail("stats", stats.status());
  for (const ModelStats& s : *stats) {
    std::cout << "model: " << s.name << " version " << s.version << "\n"
              << "  inference_count: " << s.inference_count << "\n"
              << "  execution_count: " << s.execution_count << "\n"
              << "  last_inference: "
              << (s.last_inference_ms == 0
                      ? std::string("never")
                      : absl::FormatTime(
                            absl::FromUnixMillis(static_cast<int64_t>(s.last_inference_ms)),
                            absl::UTCTimeZone()))
              << "\n"
              << "  success (count / mean): " << Mean(s.success) << "\n"
              << "  fail: " << Mean(s.fail) << "\n"
              << "  queue: " << Mean(s.queue) << "\n"
              << "  compute_infer (per execution): " << Mean(s.compute_infer) << "\n";
  }
  return kOk;
}

int Index(Client& client) {
  absl::StatusOr<std::vector<IndexEntry>> index =
      client.RepositoryIndex(absl::GetFlag(FLAGS_ready));
  if (!index.ok()) return Fail("index", index.status());
  for (const IndexEntry& e : *index) {
    std::cout << absl::StrFormat("%-20s %-8s %-12s %s\n", e.name,
                                 e.version.empty() ? "-" : e.version, e.state, e.reason);
  }
  return kOk;
}

int LoadOrUnload(Client& client, const std::string& command) {
  const std::string model = absl::GetFlag(FLAGS_model);
  const absl::Status status = command == "load" ? client.LoadModel(model, absl::ZeroDuration())
                                                : client.UnloadModel(model, absl::ZeroDuration());
  if (!status.ok()) return Fail(command, status);
  std::cout << command << "ed " << model << "\n";
  return kOk;
}

int Infer(Client& client) {
  absl::StatusOr<Tensor> input = InputFromFlags();
  if (!input.ok()) {
    return input.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError("infer", input.status().message())
               : Fail("infer", input.status());
  }
  absl::StatusOr<bool> system_shm = SystemSharedMemoryFromFlags();
  if (!system_shm.ok()) return UsageError("infer", system_shm.status().message());
  InferOptions options;
  options.typed = absl::GetFlag(FLAGS_typed);
  std::unique_ptr<SystemSharedMemory> shm;
  Tensor sent{input->shape, {}};  // the values are in shared memory
  if (*system_shm) {
    absl::StatusOr<std::unique_ptr<SystemSharedMemory>> created =
        SystemSharedMemory::Create(&client, *input, 1);
    if (!created.ok()) return Fail("infer", created.status());
    shm = *std::move(created);
    options = shm->Options(0);
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<Tensor> output = client.Infer(
      absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_model_version), shm ? sent : *input, options);
  const absl::Duration latency = absl::Now() - start;
  if (!output.ok()) return Fail("infer", output.status());
  double lo = 0, hi = 0, sum = 0;
  if (!output->data.empty()) lo = hi = output->data[0];
  for (float v : output->data) {
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
    sum += v;
  }
  std::cout << absl::StrFormat(
      "input:   %s\noutput:  %s\nmin:     %.6g\nmax:     %.6g\n"
      "mean:    %.6g\nlatency: %.3f ms\n",
      ShapeString(input->shape), ShapeString(output->shape), lo, hi,
      output->data.empty() ? 0.0 : sum / output->data.size(), absl::ToDoubleMilliseconds(latency));
  if (const std::string path = absl::GetFlag(FLAGS_output); !path.empty()) {
    if (absl::Status s = WriteNpy(path, *output); !s.ok()) return Fail("infer", s);
  }
  return kOk;
}

template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& flag, const std::string& text) {
  std::vector<T> values;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T v{};
    bool ok = false;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(part, &v);
    } else {
      ok = absl::SimpleAtoi(part, &v);
    }
    if (!ok || !(v > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part, "' is not a positive number"));
    }
    values.push_back(v);
  }
  return values;
}

absl::Status WriteOutput(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text;
    return absl::OkStatus();
  }
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  return absl::OkStatus();
}

// The bench flags as BenchOptions; INVALID_ARGUMENT names the flag at fault.
absl::StatusOr<BenchOptions> BenchOptionsFromFlags(const ClientOptions& client_options) {
  BenchOptions options;
  absl::StatusOr<std::vector<int>> concurrency =
      ParseList<int>("concurrency", absl::GetFlag(FLAGS_concurrency));
  if (!concurrency.ok()) return concurrency.status();
  absl::StatusOr<std::vector<double>> rates = ParseList<double>("rate", absl::GetFlag(FLAGS_rate));
  if (!rates.ok()) return rates.status();
  options.concurrency = *concurrency;
  options.rates = *rates;
  if (options.rates.empty() && options.concurrency.empty()) {
    return absl::InvalidArgumentError("--concurrency or --rate must list at least one value");
  }
  const std::string arrival = absl::GetFlag(FLAGS_arrival);
  if (arrival == "poisson") {
    options.arrival = Arrival::kPoisson;
  } else if (arrival != "constant") {
    return absl::InvalidArgumentError(
        absl::StrCat("--arrival: '", arrival, "' is not constant or poisson"));
  }
  options.seed = absl::GetFlag(FLAGS_seed);
  options.warmup = absl::Milliseconds(absl::GetFlag(FLAGS_warmup_ms));
  options.window = absl::Milliseconds(absl::GetFlag(FLAGS_window_ms));
  options.max_windows = absl::GetFlag(FLAGS_max_windows);
  options.stability = absl::GetFlag(FLAGS_stability_pct) / 100.0;
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.streaming = absl::GetFlag(FLAGS_streaming);
  options.request_timeout = client_options.default_deadline;
  options.drain_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms));
  options.metrics_url = absl::GetFlag(FLAGS_metrics_url);
  options.model = absl::GetFlag(FLAGS_model);
  options.version = absl::GetFlag(FLAGS_model_version);
  if (options.window <= absl::ZeroDuration() || options.warmup < absl::ZeroDuration() ||
      options.max_windows <= 0 || options.max_in_flight <= 0 ||
      absl::GetFlag(FLAGS_channels) <= 0 || options.stability <= 0 ||
      options.drain_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--window_ms, --max_windows, --max_in_flight, --channels and "
        "--stability_pct must be positive, --warmup_ms and --drain_timeout_ms "
        "not negative");
  }
  return options;
}

// Whether the report files can be written (and --plot drawn) before a
// bench spends its time.
absl::Status CheckBenchOutputs() {
  const std::string plot = absl::GetFlag(FLAGS_plot);
  if (!plot.empty()) {
    if (absl::Status s = CheckGnuplot(); !s.ok()) return s;
  }
  for (const std::string& path : {plot, absl::GetFlag(FLAGS_csv), absl::GetFlag(FLAGS_json)}) {
    if (path.empty() || path == "-") continue;
    if (absl::Status s = CheckWritable(path); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// --channels Clients, each with a connection of its own.
struct Channels {
  std::vector<std::unique_ptr<Client>> owned;
  std::vector<Client*> clients;  // into `owned`
};

absl::StatusOr<Channels> OpenChannels(const ClientOptions& client_options, int channels) {
  Channels out;
  for (int i = 0; i < channels; ++i) {
    absl::StatusOr<std::unique_ptr<Client>> c =
        Client::Create(ServerFromFlags(client_options), client_options);
    if (!c.ok()) return c.status();
    out.clients.push_back(c->get());
    out.owned.push_back(*std::move(c));
  }
  return out;
}

// Requests a bench may have in flight at once: the largest concurrency, or
// open loop --max_in_flight. With shared memory, one output slice each.
int MaxInFlight(const BenchOptions& options) {
  if (!options.rates.empty()) return options.max_in_flight;
  return *std::max_element(options.concurrency.begin(), options.concurrency.end());
}

// The requests a bench sends: one per output slice of `shm` (each in flight
// at most once at a time), or without shared memory one for every send.
absl::StatusOr<std::vector<std::shared_ptr<const PreparedRequest>>> PrepareBenchRequests(
    Client& client, const BenchOptions& options, const Tensor& input,
    const InferOptions& infer_options, const SystemSharedMemory* shm) {
  std::vector<std::shared_ptr<const PreparedRequest>> requests;
  if (shm == nullptr) {
    absl::StatusOr<std::shared_ptr<const PreparedRequest>> r =
        client.Prepare(options.model, options.version, input, infer_options);
    if (!r.ok()) return r.status();
    requests.push_back(*std::move(r));
    return requests;
  }
  for (int i = 0; i < MaxInFlight(options); ++i) {
    absl::StatusOr<std::shared_ptr<const PreparedRequest>> r =
        client.Prepare(options.model, options.version, Tensor{input.shape, {}}, shm->Options(i));
    if (!r.ok()) return r.status();
    requests.push_back(*std::move(r));
  }
  return requests;
}

// The line above the table: what was sent, how, and over what.
std::string BenchHeader(const ClientOptions& client_options, const BenchOptions& options,
                        const Tensor& input, const std::string& encoding, int64_t request_bytes) {
  const bool http = client_options.protocol == Protocol::kHttp;
  return absl::StrFormat("model %s, input %s (%s, %d bytes/request), %d channel(s), %s\n",
                         options.model, ShapeString(input.shape), encoding, request_bytes,
                         absl::GetFlag(FLAGS_channels),
                         http ? "REST infer (HTTP/1.1, a connection per request in flight)"
                         : options.streaming ? "ModelStreamInfer (one stream per channel)"
                                             : "unary ModelInfer");
}

// How the tensors travel, as the header names it.
std::string BenchEncoding(const ClientOptions& client_options, const InferOptions& infer_options,
                          bool shared_memory) {
  if (shared_memory) return "system shared memory";
  if (infer_options.typed) return "typed";
  if (client_options.http_json) return "JSON";
  return client_options.protocol == Protocol::kHttp ? "binary" : "raw";
}

// The table on stdout (unless --csv or --json take it), then --csv, --json
// and --plot.
absl::Status WriteBenchReports(const std::vector<StepResult>& results, const std::string& header,
                               const std::string& plot_title) {
  const std::string csv = absl::GetFlag(FLAGS_csv);
  const std::string json = absl::GetFlag(FLAGS_json);
  if (csv != "-" && json != "-") std::cout << header << FormatTable(results);
  if (!csv.empty()) {
    if (absl::Status s = WriteOutput(csv, FormatCsv(results)); !s.ok()) return s;
  }
  if (!json.empty()) {
    if (absl::Status s = WriteOutput(json, FormatJson(results)); !s.ok()) return s;
  }
  if (const std::string plot = absl::GetFlag(FLAGS_plot); !plot.empty()) {
    if (absl::Status s = WritePlot(results, plot_title, plot); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// kOk, or kFailed if any request failed; warns of steps that did not
// stabilise.
int BenchVerdict(const std::vector<StepResult>& results) {
  int64_t failed = 0, total = 0;
  std::string first_error;
  for (const StepResult& r : results) {
    total += r.requests;
    for (const auto& [code, n] : r.errors) failed += n;
    if (first_error.empty()) first_error = r.first_error;
  }
  if (failed > 0) {
    return Fail("bench", absl::UnknownError(absl::StrCat(failed, " of ", total,
                                                         " requests failed (see the errors "
                                                         "column); the first: ",
                                                         first_error)));
  }
  bool unstable = false;
  for (const StepResult& r : results) unstable |= !r.stable;
  if (unstable) {
    std::cerr << "sepconv-client bench: warning: some steps did not stabilise within "
                 "--max_windows; their figures are from the last windows\n";
  }
  return kOk;
}

// RunBench, with a progress line on stderr when it is a terminal.
absl::StatusOr<std::vector<StepResult>> RunBenchShowingProgress(
    const std::vector<Client*>& clients,
    const std::vector<std::shared_ptr<const PreparedRequest>>& requests, bool exclusive,
    BenchOptions options) {
  const bool tty = isatty(STDERR_FILENO);
  if (tty) {
    options.progress = [](const std::string& line) {
      std::cerr << "\r" << line << "\033[K" << std::flush;
    };
  }
  absl::StatusOr<std::vector<StepResult>> results =
      exclusive ? RunBench(clients, requests, options) : RunBench(clients, requests[0], options);
  if (tty) std::cerr << "\r\033[K" << std::flush;
  return results;
}

int Bench(const ClientOptions& client_options) {
  absl::StatusOr<BenchOptions> options = BenchOptionsFromFlags(client_options);
  if (!options.ok()) return UsageError("bench", options.status().message());
  if (absl::Status s = CheckBenchOutputs(); !s.ok()) return Fail("bench", s);
  absl::StatusOr<bool> system_shm = SystemSharedMemoryFromFlags();
  if (!system_shm.ok()) return UsageError("bench", system_shm.status().message());
  absl::StatusOr<Tensor> input = InputFromFlags();
  if (!input.ok()) {
    return input.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError("bench", input.status().message())
               : Fail("bench", input.status());
  }
  absl::StatusOr<Channels> channels = OpenChannels(client_options, absl::GetFlag(FLAGS_channels));
  if (!channels.ok()) return Fail("bench", channels.status());
  Client* first = channels->clients[0];
  InferOptions infer_options;
  infer_options.typed = absl::GetFlag(FLAGS_typed);
  // Declared after the Clients: unregisters its regions before they go.
  std::unique_ptr<SystemSharedMemory> shm;
  if (*system_shm) {
    absl::StatusOr<std::unique_ptr<SystemSharedMemory>> created =
        SystemSharedMemory::Create(first, *input, MaxInFlight(*options));
    if (!created.ok()) return Fail("bench", created.status());
    shm = *std::move(created);
  }
  absl::StatusOr<std::vector<std::shared_ptr<const PreparedRequest>>> requests =
      PrepareBenchRequests(*first, *options, *input, infer_options, shm.get());
  if (!requests.ok()) return Fail("bench", requests.status());
  absl::StatusOr<std::vector<StepResult>> results =
      RunBenchShowingProgress(channels->clients, *requests, shm != nullptr, *options);
  if (!results.ok()) return Fail("bench", results.status());
  const std::string header = BenchHeader(
      client_options, *options, *input,
      BenchEncoding(client_options, infer_options, shm != nullptr), (*requests)[0]->ByteSize());
  const std::string title =
      absl::StrCat(options->model, " ", ShapeString(input->shape), " via ",
                   ProtocolName(client_options.protocol), " ", ServerFromFlags(client_options));
  if (absl::Status s = WriteBenchReports(*results, header, title); !s.ok()) {
    return Fail("bench", s);
  }
  return BenchVerdict(*results);
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(Usage(""));
  // Per-command help before Abseil's parser, which only knows one program.
  std::string command;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "-help" || arg == "help") {
      help = true;
    } else if (absl::StartsWith(arg, "--model=") || absl::StartsWith(arg, "-model=") ||
               arg == "--model" || arg == "-model") {
      model_given = true;
    } else if (arg[0] != '-' && command.empty()) {
      command = arg;
    }
  }
  if (help) {
    std::cout << Usage(command);
    return kOk;
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) {
    std::cerr << Usage("");
    return kUsage;
  }
  command = positional[1];
  bool known = false;
  for (const Command& c : Commands()) known |= c.name == command;
  if (!known) {
    std::cerr << "sepconv-client: unknown command '" << command << "'\n" << Usage("");
    return kUsage;
  }
  absl::StatusOr<ClientOptions> options = OptionsFromFlags();
  if (!options.ok()) return UsageError(command, options.status().message());
  if (command == "bench") return Bench(*options);
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create(ServerFromFlags(*options), *options);
  if (!client.ok()) return Fail(command, client.status());
  if (command == "health") return Health(**client);
  if (command == "metadata") return Metadata(**client);
  if (command == "config") return Config(**client);
  if (command == "stats") return Stats(**client);
  if (command == "index") return Index(**client);
  if (command == "load" || command == "unload") return LoadOrUnload(**client, command);
  return Infer(**client);
}

}  // namespace
}  // namespace sepconv::client

int main(int argc, char** argv) {
  // Each response is parsed into a fresh message, whose raw output (392 KB at
  // 1x32x56x56) glibc would mmap, fault in page by page and munmap per call;
  // above its defaults, freed payloads stay in the heap for the next call
  // (bench against tests/bench/echo_server: ~50-70 page faults and ~30% of
  // the client's CPU time per request less). Before any thread starts.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  // Every Client is gone when Main returns; gRPC's threads end before exit.
  sepconv::client::GrpcRuntime grpc;
  return sepconv::client::Main(argc, argv);
}
