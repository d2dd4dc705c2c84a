#ifndef SEPCONV_CLIENT_CLIENT_H_
#define SEPCONV_CLIENT_CLIENT_H_

// A client of the KServe v2 inference API served by sepconv-server, or by any
// server speaking that protocol (Triton, KServe): over gRPC (and
// grpc.health.v1), the default, or over HTTP/REST with Triton's extensions
// (ClientOptions::protocol; rest_client.h). Both answer every call alike;
// what follows is gRPC's, and where REST differs its comment says so.
//
// One Client owns one channel, reused by every call: one connection per server
// address the target resolves to (its own, not shared with other Clients).
// Targets (any gRPC target URI):
//   "host:port"                      one name; DNS, every address it has
//   "dns:///name:port"               the same, explicit (e.g. a Kubernetes
//                                    headless Service: one address per pod,
//                                    re-resolved when a connection drops)
//   "ipv4:10.0.0.1:8001,10.0.0.2:8001"  a fixed list of replicas
// With several addresses, ClientOptions::lb_policy says how calls spread.
// Every call has a deadline (the per-call one, else ClientOptions::default_deadline)
// and never waits for the server to come up: an unreachable server fails fast
// with UNAVAILABLE, a slow one with DEADLINE_EXCEEDED. gRPC errors come back
// as absl::Status with the same code and the server's message.
//
// Over REST the target is one "host:port" (the server's --http_port), with
// one HTTP/1.1 connection per call in flight (rest_client.h); the HTTP
// status of an error answer maps back to the code the server's status had
// (400 INVALID_ARGUMENT, 404 NOT_FOUND, 503 UNAVAILABLE, ...).
//
// Thread safety: a Client is thread-safe; share one between threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/tensor.h"

namespace sepconv::client {

// How calls spread over the addresses a target resolves to.
enum class LbPolicy {
  // Each call to the next READY address in turn; an address that fails is
  // skipped until it reconnects. With one address, the same as kPickFirst.
  kRoundRobin,
  // Every call to the first address that connects (gRPC's own default).
  kPickFirst,
};

// "round_robin" / "pick_first" (gRPC's names) and back.
absl::StatusOr<LbPolicy> ParseLbPolicy(const std::string& name);
std::string LbPolicyName(LbPolicy policy);

// The wire: KServe v2 over gRPC, or over HTTP/REST (Triton's HTTP API).
enum class Protocol {
  kGrpc,
  kHttp,
};

// "grpc" / "http" and back.
absl::StatusOr<Protocol> ParseProtocol(const std::string& name);
std::string ProtocolName(Protocol protocol);

struct ClientOptions {
  Protocol protocol = Protocol::kGrpc;
  // REST only: tensors travel as JSON "data" (each float its shortest exact
  // decimal) instead of Triton's binary tensor data, the default.
  bool http_json = false;

  // TLS: off by default (plaintext). With `use_tls`, the server is verified
  // against `root_certs_pem` (PEM text; empty = the system's roots). Set both
  // `client_cert_pem` and `client_key_pem` for mutual TLS.
  bool use_tls = false;
  std::string root_certs_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  // Overrides the name the server's certificate must carry (SNI too).
  std::string tls_server_name;
  // When set, every call sends "authorization: Bearer <token>".
  std::string token;
  // Deadline of calls that do not give their own.
  absl::Duration default_deadline = absl::Seconds(30);
  // Largest message sent or received.
  int64_t max_message_bytes = int64_t{1} << 30;
  // gRPC only (REST has one address). Round robin by default: a client of a
  // multi-replica deployment (the
  // headless Service, an ipv4: list) wants every replica busy, and with one
  // address it costs nothing. pick_first sends everything to one replica.
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  // Attempts of a call that ends UNAVAILABLE (a replica restarting or gone,
  // a connection closed by the server's max connection age) or CANCELLED by
  // the server (a call that raced its shutdown): gRPC's retry policy with
  // exponential backoff from 50 ms; each attempt may go to another replica.
  // Every call of this API is idempotent (inference has no side effects), so
  // retrying is safe. 1 = no retries; gRPC caps it at 5.
  // Over REST: a call that got no HTTP answer at all (refused, reset) is
  // sent again, up to max_attempts tries within its deadline; an error
  // answer (even 503) is not.
  // Retries stay within the call's deadline; requests above
  // `retry_buffer_bytes` are sent once (gRPC must keep a copy to resend).
  // gRPC cannot retry a call whose answer had begun to arrive when the
  // connection was reset: a server closing an aged connection can cut the
  // answer in flight (the client's flow-control frames reach a socket it has
  // already closed, and the kernel resets it), about one call in 200,000 at a
  // 2 s connection age. With max_attempts > 1, Infer and InferAsync send an
  // inference call that still ends UNAVAILABLE once more, within its
  // deadline, through the same retry policy (so up to twice max_attempts
  // tries in all against a server that stays down).
  int max_attempts = 5;
  int64_t retry_buffer_bytes = int64_t{64} << 20;
};

// Where a tensor lives in a system shared-memory region registered with the
// server (Triton's shared_memory_region, shared_memory_offset and
// shared_memory_byte_size parameters).
struct SharedMemoryPlacement {
  std::string region;     // the name the region was registered under
  int64_t offset = 0;     // from the region's start (an output's: a multiple of 4)
  int64_t byte_size = 0;  // bytes there: an input's exactly, an output's at least
};

struct InferOptions {
  // Zero: ClientOptions::default_deadline.
  absl::Duration deadline = absl::ZeroDuration();
  // Send the input as typed fp32_contents instead of raw_input_contents.
  // Not with shared memory. gRPC only (REST: ClientOptions::http_json).
  bool typed = false;
  // Sent as ModelInferRequest.id and echoed back by the server.
  std::string request_id;
  // The input is in shared memory: the request names the placement and
  // carries no values. The input Tensor then gives only the shape; its data
  // must be empty (the caller has written the values into the region, and
  // must not change them before the answer). byte_size must be the shape's
  // FP32 bytes.
  std::optional<SharedMemoryPlacement> input_shared_memory;
  // The output goes to shared memory: the server writes it there and the
  // response carries only its name, datatype and shape. A response that
  // carries the values anyway (a server without the extension ignored the
  // request) is DATA_LOSS, as is one whose output exceeds byte_size.
  std::optional<SharedMemoryPlacement> output_shared_memory;
  // The output requested in shared memory: the model's output name (see
  // ModelMetadata). Empty: "output".
  std::string output_name;
  // Infer with output_shared_memory: this process's view of the output's
  // bytes (the mapping of the placement's region, from its offset: e.g.
  // absl::MakeConstSpan(region.data() + offset, byte_size) when the region
  // was registered at offset 0). Infer copies the output Tensor from it once
  // the server has answered; it must stay mapped through the call.
  // Required by Infer (INVALID_ARGUMENT without), unused by Prepare.
  absl::Span<const char> output_view;
};

// A registered system shared-memory region, as the server reports it.
struct SharedMemoryStatus {
  std::string name;
  std::string key;  // the POSIX shared-memory object
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

struct TensorInfo {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;  // -1 for a variable dimension
};

struct ModelInfo {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
};

struct ServerInfo {
  std::string name;
  std::string version;
  std::vector<std::string> extensions;
};

// Triton's statistics extension: a cumulative count and duration.
struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// One model version's cumulative statistics (Triton's ModelStatistics).
struct ModelStats {
  std::string name;
  std::string version;
  uint64_t last_inference_ms = 0;  // since the epoch; 0 = never
  uint64_t inference_count = 0;    // samples
  uint64_t execution_count = 0;    // engine executions (batches)
  DurationStat success, fail, queue, compute_input, compute_infer, compute_output;
};

// One row of Triton's repository index.
struct IndexEntry {
  std::string name;
  std::string version;  // empty for a model that is not loaded
  std::string state;    // "READY", "UNAVAILABLE", ...
  std::string reason;
};

// A ModelInfer request serialised once, to be sent many times without
// re-encoding (what a load generator needs). Immutable; thread-safe to share.
// Only a Client of the protocol that prepared it can send it (any such
// Client: one per channel may share it); another refuses it, INVALID_ARGUMENT.
class PreparedRequest {
 public:
  virtual ~PreparedRequest() = default;
  // Serialised size in bytes.
  virtual int64_t ByteSize() const = 0;
  // Batch size (first input dimension) of the request.
  virtual int64_t samples() const = 0;
};

// What an asynchronous ModelInfer produced: the output's shape, its byte size
// and the whole-call latency. The output values are checked for size but not
// kept (a load generator does not need them).
struct AsyncInferResult {
  absl::Status status;
  std::vector<int64_t> output_shape;
  int64_t output_bytes = 0;
  absl::Duration latency;
};

// One ModelStreamInfer call (Triton's streaming extension): many requests on
// one HTTP/2 stream, answered in the order they were sent. The server holds
// a bounded number per stream (sepconv-server --stream_max_in_flight); more
// wait in this stream's flow-control window.
//
// Thread-safe. The stream has no deadline: it lives until Close.
class InferStream {
 public:
  virtual ~InferStream() = default;
  // Queues `request` without blocking; `done` runs exactly once, on a gRPC
  // thread, with its answer (latency from this call). A request the server
  // refused comes back with its error_message as the status message, the
  // code taken from the message's "<CODE>: " prefix (UNKNOWN without one);
  // if the stream ends first, with the stream's status. A null request, or
  // one that a Client of another protocol prepared (e.g. REST's), is not
  // sent: `done` runs at once, on the calling thread, with INVALID_ARGUMENT.
  // Not after Close.
  virtual void Send(std::shared_ptr<const PreparedRequest> request,
                    std::function<void(AsyncInferResult)> done) = 0;
  // Half-closes, waits (at most `timeout`, then cancels) for every answer
  // and the end of the stream, and returns the stream's status. Once.
  virtual absl::Status Close(absl::Duration timeout) = 0;
};

// Holds gRPC's runtime (its threads: connections, TLS handshakes, timers)
// from construction to destruction. Optional: without it gRPC starts with
// the first Client and, once the last one is gone, stops in the background
// while the program carries on or exits. A program that must not exit with
// gRPC's threads still running (e.g. under LeakSanitizer, which reports their
// per-thread OpenSSL state) makes one at the top of main, before any Client;
// the destructor, run after every Client and InferStream is gone, shuts gRPC
// down and returns once its threads have ended (waiting at most 5 s for
// connection attempts the Clients left behind). Not thread-safe: one per
// program, on its main thread.
class GrpcRuntime {
 public:
  GrpcRuntime();
  ~GrpcRuntime();
  GrpcRuntime(const GrpcRuntime&) = delete;
  GrpcRuntime& operator=(const GrpcRuntime&) = delete;
};

class Client {
 public:
  // Creates the channel to `target` ("host:port", any gRPC target URI, see
  // the top of this file), or with Protocol::kHttp the REST client of
  // "host:port". Connects lazily; fails only on unusable options (e.g. TLS
  // half set, max_attempts < 1, http_json over gRPC, a REST target that is
  // not host:port).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const std::string& target,
                                                        ClientOptions options);
  // Cancels the asynchronous calls still in flight and returns once each
  // one's `done` has returned. Must not run inside such a `done`.
  virtual ~Client() = default;

  // grpc.health.v1 Check: SERVING etc. as the enum's name. `service` is ""
  // for the server as a whole or a model name. REST has no health service:
  // "" is the server's readiness (/v2/health/ready), a model name the
  // model's, SERVING or NOT_SERVING (NOT_FOUND for an unknown model).
  virtual absl::StatusOr<std::string> Health(const std::string& service) = 0;
  virtual absl::StatusOr<bool> ServerLive() = 0;
  virtual absl::StatusOr<bool> ServerReady() = 0;
  virtual absl::StatusOr<ServerInfo> ServerMetadata() = 0;
  virtual absl::StatusOr<ModelInfo> ModelMetadata(const std::string& model,
                                                  const std::string& version) = 0;
  virtual absl::StatusOr<bool> ModelReady(const std::string& model, const std::string& version) = 0;

  // Triton's extensions. The effective configuration of `model` (empty
  // version: the one the server picks) in protobuf text format, as a
  // config.pbtxt would hold it.
  virtual absl::StatusOr<std::string> ModelConfigText(const std::string& model,
                                                      const std::string& version) = 0;
  // Statistics per model version; empty model = every model, empty version
  // = every version.
  virtual absl::StatusOr<std::vector<ModelStats>> ModelStatistics(const std::string& model,
                                                                  const std::string& version) = 0;
  // The repository's models (only those ready for inference with
  // `ready_only`).
  virtual absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(bool ready_only) = 0;
  // Loads (or reloads) / unloads `model`; the server must run with
  // --model_control_mode=explicit (else UNAVAILABLE, as Triton answers).
  // Returns when the server has done it; `deadline` zero = the default.
  virtual absl::Status LoadModel(const std::string& model, absl::Duration deadline) = 0;
  virtual absl::Status UnloadModel(const std::string& model, absl::Duration deadline) = 0;

  // Triton's system shared-memory extension (see shared_memory.h). Registers
  // [offset, offset + byte_size) of the POSIX shared-memory object `key`
  // ("/name") under `name`; the server maps it until it is unregistered.
  // Errors are the server's (ALREADY_EXISTS for a name in use, NOT_FOUND /
  // INVALID_ARGUMENT for a key it cannot open, RESOURCE_EXHAUSTED past its
  // limits). A register whose answer was lost and was retried may end
  // ALREADY_EXISTS although it took effect.
  virtual absl::Status RegisterSystemSharedMemory(const std::string& name, const std::string& key,
                                                  uint64_t offset, uint64_t byte_size) = 0;
  // Unregisters `name` (empty: every region).
  virtual absl::Status UnregisterSystemSharedMemory(const std::string& name) = 0;
  // The region `name` (empty: every region), sorted by name.
  virtual absl::StatusOr<std::vector<SharedMemoryStatus>> SystemSharedMemoryStatus(
      const std::string& name) = 0;

  // Runs `input` (FP32, input named "input") through `model`; returns the
  // first output. The response's form (raw or typed) follows the request's;
  // a response that does not match its own shape is DATA_LOSS. With
  // options.input_shared_memory / output_shared_memory, the input is read
  // from / the output written to shared memory (see InferOptions).
  virtual absl::StatusOr<Tensor> Infer(const std::string& model, const std::string& version,
                                       const Tensor& input, const InferOptions& options) = 0;

  // Serialises a request for InferAsync (and InferStream). With
  // options.output_shared_memory, the request's answers are valid without
  // values (AsyncInferResult has the output's shape and bytes); every send
  // of it writes the same placement, so two of them in flight at once race
  // on it: a load generator prepares one request per output slice.
  virtual absl::StatusOr<std::shared_ptr<const PreparedRequest>> Prepare(
      const std::string& model, const std::string& version, const Tensor& input,
      const InferOptions& options) = 0;

  // Sends `request` without blocking; `done` runs exactly once, on a gRPC
  // thread, when the call ends (CANCELLED when the Client is destroyed first;
  // at once, on the calling thread, when the call is started while the
  // Client is being destroyed; and at once, on the calling thread, with
  // INVALID_ARGUMENT when `request` is null or a Client of another protocol
  // prepared it: any Client of this one's protocol may have, e.g. one per
  // channel sharing one request). Many calls may be in flight at once, none
  // holding a thread. `done` must not block for long. Zero `deadline` means
  // the default. The Client may be destroyed with calls pending: its
  // destructor cancels them and waits for their `done`.
  // Over REST each call in flight holds a worker thread with a connection of
  // its own (the workers grow to the calls in flight and stay), and `done`
  // runs on that worker; the destructor shuts the connections down under
  // the calls in flight.
  virtual void InferAsync(std::shared_ptr<const PreparedRequest> request, absl::Duration deadline,
                          std::function<void(AsyncInferResult)> done) = 0;

  // Opens a ModelStreamInfer stream for requests from Prepare. The Client
  // must outlive it. UNIMPLEMENTED over REST.
  virtual absl::StatusOr<std::unique_ptr<InferStream>> OpenStream() = 0;
};

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_CLIENT_H_
