#ifndef SEPCONV_SERVER_METRICS_METRICS_H_
#define SEPCONV_SERVER_METRICS_METRICS_H_

// The Prometheus metrics (README "Watching it" lists them), built with
// prometheus-cpp.
// An injected object (never a global): main creates one Metrics, the service
// and the schedulers record through the ModelMetrics handle of their model.
// A version's handle is shared: its ServedModel and every request or job
// that records into it own a reference, and when the last one goes (the
// version was unloaded or replaced and has drained) its series leave the
// exposition. Callers' handles may be null when metrics are off.
// All methods are thread-safe; recording takes no lock that a benchmark sees.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/flops.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sepconv {

struct ModelLabels {
  std::string model;
  std::string version;
  int64_t layers = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
};

// Cumulative values of one model version's series, read back for Triton's
// ModelStatistics so that it always agrees with /metrics. Durations in ns.
struct ModelStatsSnapshot {
  // sepconv_inference_requests_total: status="ok", and every other status.
  uint64_t success_count = 0;
  uint64_t fail_count = 0;
  // sepconv_request_duration_seconds_sum split by outcome (the histogram
  // itself has no status label): success_ns + fail_ns == its sum.
  uint64_t success_ns = 0;
  uint64_t fail_ns = 0;
  // sepconv_queue_duration_seconds and sepconv_compute_duration_seconds:
  // _count and _sum (compute counts executions, not requests).
  uint64_t queue_count = 0;
  uint64_t queue_ns = 0;
  uint64_t compute_count = 0;
  uint64_t compute_ns = 0;
  uint64_t samples = 0;     // sepconv_inference_samples_total
  uint64_t executions = 0;  // sepconv_inference_executions_total
  // When the last request finished (any outcome), ms since the epoch; 0: never.
  uint64_t last_request_ms = 0;
};

class ModelMetrics {
 public:
  virtual ~ModelMetrics() = default;
  // The series' current values. Implementations that keep none (test
  // doubles) return zeros.
  virtual ModelStatsSnapshot Stats() const { return {}; }
  // One finished request, any outcome: sepconv_inference_requests_total
  // {status="ok" or the gRPC code name}; sepconv_request_duration_seconds.
  virtual void RequestDone(absl::StatusCode code, absl::Duration total) = 0;
  // sepconv_pending_requests: +1 when a request enters the queue, -1 when it
  // leaves it (computed, expired, cancelled or rejected at shutdown).
  virtual void PendingAdd(int64_t delta) = 0;
  // Time one request spent queued before its batch started: in its model's
  // queue, then waiting for its engine lane (other models' batches).
  virtual void QueueTime(absl::Duration queued) = 0;
  // One engine execution: executions_total, samples_total (+= samples),
  // batch_size, compute_duration_seconds and the FLOP counters.
  virtual void BatchExecuted(int64_t samples, absl::Duration compute, const FlopCount& flops) = 0;
  // sepconv_batch_delay_seconds: how long the batching policy held one batch
  // back for company once a worker was free to run it (zero: it started at
  // once). No-op unless overridden.
  virtual void BatchHeld(absl::Duration /*held*/) {}
  // sepconv_overhead_duration_seconds: one computed request's time in the
  // server minus its queue and compute time. No-op unless overridden.
  virtual void RequestOverhead(absl::Duration /*overhead*/) {}
};

class Metrics {
 public:
  static std::unique_ptr<Metrics> Create();
  virtual ~Metrics() = default;
  // The handle for one served model version: the live one for the same
  // labels, else a new one (its series created, sepconv_model_info set to
  // 1). When the last reference to a handle is dropped, its series are
  // removed from the registry (those shared with a live handle of the same
  // model and version but another shape stay). A handle may outlive this
  // Metrics.
  virtual std::shared_ptr<ModelMetrics> ForModel(const ModelLabels& labels) = 0;
  // Everything above plus the standard process_* metrics.
  virtual std::shared_ptr<prometheus::Registry> registry() = 0;
};

// Serves a registry at http://address:port/metrics until destroyed.
class MetricsEndpoint {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, int port, std::shared_ptr<prometheus::Registry> registry);
  virtual ~MetricsEndpoint() = default;
  // The port actually bound (useful with port 0 in tests).
  virtual int port() const = 0;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_METRICS_METRICS_H_
