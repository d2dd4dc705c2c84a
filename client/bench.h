#ifndef SEPCONV_CLIENT_BENCH_H_
#define SEPCONV_CLIENT_BENCH_H_

// A load generator in the spirit of Triton's perf_analyzer, on the client
// library's asynchronous API (many requests in flight, no thread each).
//
// Each step is either closed loop (a fixed number of requests always in
// flight) or open loop (requests sent at a fixed rate, constant or Poisson,
// latency counted from the scheduled send time so that a falling-behind
// server is not hidden). A step warms up, then measures windows until the last
// `stable_windows` agree within `stability` on throughput and mean latency (or
// `max_windows` is reached), then drains. The figures are those of the last
// `stable_windows` windows; `requests` counts every request of the step
// (warm-up and drain included), which is what the server's counter sees
// between the scrapes taken before and after the step.
//
// Thread safety: RunBench is a blocking call; run one at a time per Client.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace sepconv::client {

enum class Arrival { kConstant, kPoisson };

struct BenchOptions {
  // Closed-loop steps (requests in flight); used when `rates` is empty.
  std::vector<int> concurrency = {1};
  // Open-loop steps (requests per second).
  std::vector<double> rates;
  Arrival arrival = Arrival::kConstant;
  uint64_t seed = 1;  // of Poisson arrivals
  // Open loop: at most this many in flight; later sends wait (and that wait
  // counts as latency).
  int max_in_flight = 1024;
  absl::Duration warmup = absl::Milliseconds(500);
  absl::Duration window = absl::Seconds(1);
  int max_windows = 10;
  int stable_windows = 3;
  double stability = 0.10;
  // Per request; zero = the client's default.
  absl::Duration request_timeout = absl::ZeroDuration();
  // How long a step waits for its requests to end once it stops sending
  // before it fails with DEADLINE_EXCEEDED (their deadlines end them anyway;
  // this is a backstop). Zero = request_timeout (or 30 s) + 5 s.
  absl::Duration drain_timeout = absl::ZeroDuration();
  // Server-side split from this Prometheus endpoint ("" = none), for the
  // series of `model` (and `version` unless empty).
  std::string metrics_url;
  std::string model;
  std::string version;
  // Send the requests as ModelStreamInfer on one stream per client
  // (connection) instead of unary calls; concurrency is then the requests in
  // flight over the streams. `request_timeout` does not apply to them.
  bool streaming = false;
  // Called after each window with a one-line summary (e.g. for a TTY).
  std::function<void(const std::string&)> progress;
};

struct StepResult {
  std::string mode;  // "concurrency" or "rate"
  double load = 0;   // in-flight requests or requests/s
  int windows = 0;   // measured
  bool stable = false;
  int64_t requests = 0;  // sent and completed in the whole step, any outcome
  int64_t measured = 0;  // successes in the reported windows
  double infer_per_sec = 0;
  double samples_per_sec = 0;
  // Latency of successful requests in the reported windows, milliseconds.
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  std::map<std::string, int64_t> errors;  // gRPC code name -> count, whole step
  std::string first_error;                // the first failure's status, in full
  // Server-side, from /metrics deltas over the step (when scraped).
  bool has_server = false;
  double server_requests = 0;
  double server_queue_ms = 0;    // mean per request
  double server_compute_ms = 0;  // mean per execution (a batch)
  double server_batch = 0;       // mean samples per execution
};

// Sends one request and fails with its status when it does not succeed (so
// that a bad model, shape or server ends the bench at once; it also connects,
// so it gets at least 10 s whatever request_timeout says); then runs every
// step. Requests go round-robin over `clients` (one connection each).
// Returns once every request it sent has ended, or with an error while some
// are still pending after a drain timeout: then their callbacks own what they
// touch, and destroying the Clients cancels them and waits for them.
absl::StatusOr<std::vector<StepResult>> RunBench(const std::vector<Client*>& clients,
                                                 std::shared_ptr<const PreparedRequest> request,
                                                 const BenchOptions& options);

// As above, for requests that must not be in flight twice at once (e.g. each
// has its output placed in its own slice of shared memory): every request
// in flight is a different one of `exclusive_requests`. A closed-loop
// concurrency above their number is INVALID_ARGUMENT; open loop holds at
// most that many in flight (besides max_in_flight). The probe request is the
// first of them.
absl::StatusOr<std::vector<StepResult>> RunBench(
    const std::vector<Client*>& clients,
    std::vector<std::shared_ptr<const PreparedRequest>> exclusive_requests,
    const BenchOptions& options);

// Nearest-rank percentile of sorted `values` (p in [0, 100]); 0 if empty.
double Percentile(const std::vector<double>& sorted, double p);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_BENCH_H_
