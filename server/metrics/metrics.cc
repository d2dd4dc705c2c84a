#include "server/metrics/metrics.h"

#include <array>
#include <atomic>
#include <cmath>
#include <exception>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/process_metrics.h"

namespace sepconv {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// Every absl::StatusCode (0..16) gets a pre-created series, so recording is
// an array index and the error-ratio queries see zeros rather than no data.
constexpr int kNumStatusCodes = static_cast<int>(absl::StatusCode::kUnauthenticated) + 1;

// 50us .. 10s, roughly 1-2.5-5 per decade.
const Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
      50e-3, 100e-3, 250e-3, 500e-3, 1,    2.5,    5,    10};
  return *buckets;
}

// 0 (started at once) .. 100 ms: how long the batching policy held a batch.
const Histogram::BucketBoundaries& HoldBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3};
  return *buckets;
}

// 10 us .. 1 s: the server's own time per request, besides queue and compute.
const Histogram::BucketBoundaries& OverheadBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1};
  return *buckets;
}

const Histogram::BucketBoundaries& BatchSizeBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128};
  return *buckets;
}

std::string StatusLabel(absl::StatusCode code) {
  return code == absl::StatusCode::kOk ? "ok" : absl::StatusCodeToString(code);
}

double Seconds(absl::Duration d) { return d < absl::ZeroDuration() ? 0 : absl::ToDoubleSeconds(d); }

uint64_t Nanos(double seconds) { return static_cast<uint64_t>(std::llround(seconds * 1e9)); }

uint64_t Whole(double value) { return static_cast<uint64_t>(std::llround(value)); }

// C++17 has no atomic<double>::fetch_add.
void AddSeconds(std::atomic<double>& total, double seconds) {
  double old = total.load(std::memory_order_relaxed);
  while (!total.compare_exchange_weak(old, old + seconds, std::memory_order_relaxed)) {
  }
}

// A histogram's _count and _sum (seconds -> ns).
void ReadHistogram(const Histogram& histogram, uint64_t* count, uint64_t* ns) {
  const prometheus::ClientMetric metric = histogram.Collect();
  *count = metric.histogram.sample_count;
  *ns = Nanos(metric.histogram.sample_sum);
}

// The registry plus the process_* families, produced at scrape time.
class RegistryWithProcess : public prometheus::Registry {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families = prometheus::Registry::Collect();
    for (prometheus::MetricFamily& family : process_.Collect()) {
      families.push_back(std::move(family));
    }
    return families;
  }

 private:
  ProcessCollector process_;
};

// The metric families (docs/architecture.md, "Metrics"), built once per Metrics.
struct Families {
  explicit Families(prometheus::Registry& registry)
      : requests(prometheus::BuildCounter()
                     .Name("sepconv_inference_requests_total")
                     .Help("Inference requests by final status (ok or the gRPC code name).")
                     .Register(registry)),
        samples(prometheus::BuildCounter()
                    .Name("sepconv_inference_samples_total")
                    .Help("Samples (batch entries) computed.")
                    .Register(registry)),
        executions(prometheus::BuildCounter()
                       .Name("sepconv_inference_executions_total")
                       .Help("Engine executions (batches) run.")
                       .Register(registry)),
        request_duration(prometheus::BuildHistogram()
                             .Name("sepconv_request_duration_seconds")
                             .Help("End-to-end request time in the server, any outcome.")
                             .Register(registry)),
        queue_duration(prometheus::BuildHistogram()
                           .Name("sepconv_queue_duration_seconds")
                           .Help("Time a request waited in the queue before its batch started.")
                           .Register(registry)),
        compute_duration(prometheus::BuildHistogram()
                             .Name("sepconv_compute_duration_seconds")
                             .Help("Engine time of one execution (batch).")
                             .Register(registry)),
        batch_delay(prometheus::BuildHistogram()
                        .Name("sepconv_batch_delay_seconds")
                        .Help("Time the batching policy held a batch back for company once a "
                              "worker was free to run it (0: started at once).")
                        .Register(registry)),
        overhead_duration(prometheus::BuildHistogram()
                              .Name("sepconv_overhead_duration_seconds")
                              .Help("A computed request's time in the server minus its queue and "
                                    "compute time (parsing, validation, hand-offs, callbacks).")
                              .Register(registry)),
        batch_size(prometheus::BuildHistogram()
                       .Name("sepconv_batch_size")
                       .Help("Samples per engine execution.")
                       .Register(registry)),
        flops(prometheus::BuildCounter()
                  .Name("sepconv_flops_total")
                  .Help("Floating-point operations executed (2 x multiplications), by op.")
                  .Register(registry)),
        standard_flops(prometheus::BuildCounter()
                           .Name("sepconv_standard_conv_flops_total")
                           .Help("FLOPs a standard KxK convolution would have needed instead.")
                           .Register(registry)),
        pending(prometheus::BuildGauge()
                    .Name("sepconv_pending_requests")
                    .Help("Requests queued and not yet computed or dropped.")
                    .Register(registry)),
        model_info(prometheus::BuildGauge()
                       .Name("sepconv_model_info")
                       .Help("Served model versions and their shape (always 1).")
                       .Register(registry)) {}

  prometheus::Family<Counter>& requests;
  prometheus::Family<Counter>& samples;
  prometheus::Family<Counter>& executions;
  prometheus::Family<Histogram>& request_duration;
  prometheus::Family<Histogram>& queue_duration;
  prometheus::Family<Histogram>& compute_duration;
  prometheus::Family<Histogram>& batch_delay;
  prometheus::Family<Histogram>& overhead_duration;
  prometheus::Family<Histogram>& batch_size;
  prometheus::Family<Counter>& flops;
  prometheus::Family<Counter>& standard_flops;
  prometheus::Family<Gauge>& pending;
  prometheus::Family<Gauge>& model_info;
};

// Holds plain pointers to its series, created up front: recording is atomic
// adds, plus a short uncontended per-histogram critical section inside
// prometheus-cpp.
class ModelMetricsImpl : public ModelMetrics {
 public:
  ModelMetricsImpl(Families& families, const ModelLabels& labels) {
    const prometheus::Labels base = {{"model", labels.model}, {"version", labels.version}};
    auto with = [&base](const char* name, const std::string& value) {
      prometheus::Labels extended = base;
      extended.emplace(name, value);
      return extended;
    };
    for (int code = 0; code < kNumStatusCodes; ++code) {
      requests_[code] =
          &families.requests.Add(with("status", StatusLabel(static_cast<absl::StatusCode>(code))));
    }
    samples_ = &families.samples.Add(base);
    executions_ = &families.executions.Add(base);
    request_duration_ = &families.request_duration.Add(base, DurationBuckets());
    queue_duration_ = &families.queue_duration.Add(base, DurationBuckets());
    compute_duration_ = &families.compute_duration.Add(base, DurationBuckets());
    batch_delay_ = &families.batch_delay.Add(base, HoldBuckets());
    overhead_duration_ = &families.overhead_duration.Add(base, OverheadBuckets());
    batch_size_ = &families.batch_size.Add(base, BatchSizeBuckets());
    depthwise_flops_ = &families.flops.Add(with("op", "depthwise"));
    pointwise_flops_ = &families.flops.Add(with("op", "pointwise"));
    standard_flops_ = &families.standard_flops.Add(base);
    pending_ = &families.pending.Add(base);
    prometheus::Labels info = base;
    info.emplace("layers", absl::StrCat(labels.layers));
    info.emplace("in_channels", absl::StrCat(labels.in_channels));
    info.emplace("out_channels", absl::StrCat(labels.out_channels));
    info_ = &families.model_info.Add(info);
    info_->Set(1);
  }

  // Takes this handle's series out of the families: its info series, and
  // with `shared` also the series it shares with any handle of the same
  // model and version (all but the info).
  void RemoveSeries(Families& families, bool shared) {
    families.model_info.Remove(info_);
    if (!shared) return;
    for (Counter* counter : requests_) families.requests.Remove(counter);
    families.samples.Remove(samples_);
    families.executions.Remove(executions_);
    families.request_duration.Remove(request_duration_);
    families.queue_duration.Remove(queue_duration_);
    families.compute_duration.Remove(compute_duration_);
    families.batch_delay.Remove(batch_delay_);
    families.overhead_duration.Remove(overhead_duration_);
    families.batch_size.Remove(batch_size_);
    families.flops.Remove(depthwise_flops_);
    families.flops.Remove(pointwise_flops_);
    families.standard_flops.Remove(standard_flops_);
    families.pending.Remove(pending_);
  }

  void RequestDone(absl::StatusCode code, absl::Duration total) override {
    int index = static_cast<int>(code);
    if (index < 0 || index >= kNumStatusCodes) index = static_cast<int>(absl::StatusCode::kUnknown);
    requests_[index]->Increment();
    const double seconds = Seconds(total);
    request_duration_->Observe(seconds);
    AddSeconds(code == absl::StatusCode::kOk ? ok_seconds_ : failed_seconds_, seconds);
    last_request_ms_.store(absl::ToUnixMillis(absl::Now()), std::memory_order_relaxed);
  }

  ModelStatsSnapshot Stats() const override {
    ModelStatsSnapshot stats;
    for (int code = 0; code < kNumStatusCodes; ++code) {
      (code == 0 ? stats.success_count : stats.fail_count) += Whole(requests_[code]->Value());
    }
    stats.success_ns = Nanos(ok_seconds_.load());
    stats.fail_ns = Nanos(failed_seconds_.load());
    ReadHistogram(*queue_duration_, &stats.queue_count, &stats.queue_ns);
    ReadHistogram(*compute_duration_, &stats.compute_count, &stats.compute_ns);
    stats.samples = Whole(samples_->Value());
    stats.executions = Whole(executions_->Value());
    stats.last_request_ms = static_cast<uint64_t>(last_request_ms_.load(std::memory_order_relaxed));
    return stats;
  }

  void PendingAdd(int64_t delta) override { pending_->Increment(static_cast<double>(delta)); }

  void QueueTime(absl::Duration queued) override { queue_duration_->Observe(Seconds(queued)); }

  void BatchHeld(absl::Duration held) override { batch_delay_->Observe(Seconds(held)); }

  void RequestOverhead(absl::Duration overhead) override {
    overhead_duration_->Observe(Seconds(overhead));
  }

  void BatchExecuted(int64_t samples, absl::Duration compute, const FlopCount& flops) override {
    executions_->Increment();
    samples_->Increment(static_cast<double>(samples));
    batch_size_->Observe(static_cast<double>(samples));
    compute_duration_->Observe(Seconds(compute));
    depthwise_flops_->Increment(static_cast<double>(flops.depthwise));
    pointwise_flops_->Increment(static_cast<double>(flops.pointwise));
    standard_flops_->Increment(static_cast<double>(flops.standard));
  }

 private:
  std::array<Counter*, kNumStatusCodes> requests_{};
  Counter* samples_ = nullptr;
  Counter* executions_ = nullptr;
  Histogram* request_duration_ = nullptr;
  Histogram* queue_duration_ = nullptr;
  Histogram* compute_duration_ = nullptr;
  Histogram* batch_delay_ = nullptr;
  Histogram* overhead_duration_ = nullptr;
  Histogram* batch_size_ = nullptr;
  Counter* depthwise_flops_ = nullptr;
  Counter* pointwise_flops_ = nullptr;
  Counter* standard_flops_ = nullptr;
  Gauge* pending_ = nullptr;
  // Request time by outcome, for Stats (the histogram has no status label).
  std::atomic<double> ok_seconds_{0};
  std::atomic<double> failed_seconds_{0};
  std::atomic<int64_t> last_request_ms_{0};
  Gauge* info_ = nullptr;
};

// What the handles need after the Metrics that made them is gone: the
// registry, its families and the index of live handles.
struct SharedState {
  SharedState() : registry(std::make_shared<RegistryWithProcess>()), families(*registry) {}

  std::shared_ptr<prometheus::Registry> registry;
  Families families;
  absl::Mutex mu;
  // (model, version) -> the live handles of that version, by their full
  // labels (a version reloaded with another shape gets a second handle for
  // the time both are alive; they share every series but the info one).
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t>;
  struct Live {
    ModelMetricsImpl* model = nullptr;
    std::weak_ptr<ModelMetrics> handle;
  };
  std::map<std::pair<std::string, std::string>, std::map<ShapeKey, Live>> live ABSL_GUARDED_BY(mu);
};

class MetricsImpl : public Metrics {
 public:
  MetricsImpl() : state_(std::make_shared<SharedState>()) {}

  std::shared_ptr<ModelMetrics> ForModel(const ModelLabels& labels) override {
    const std::pair<std::string, std::string> version = {labels.model, labels.version};
    const SharedState::ShapeKey shape = {labels.layers, labels.in_channels, labels.out_channels};
    absl::MutexLock lock(&state_->mu);
    SharedState::Live& slot = state_->live[version][shape];
    // An expired handle whose last owner is releasing it right now: its
    // release waits for our lock, sees it was replaced and leaves the series
    // (the same objects, prometheus-cpp keys them by labels) to the new one.
    if (std::shared_ptr<ModelMetrics> handle = slot.handle.lock()) return handle;
    auto* model = new ModelMetricsImpl(state_->families, labels);
    // The deleter owns a reference to the state, so a handle may outlive
    // this Metrics.
    std::shared_ptr<ModelMetrics> handle(
        model, [state = state_, version, shape](ModelMetrics* released) {
          Release(*state, version, shape, static_cast<ModelMetricsImpl*>(released));
        });
    slot = SharedState::Live{model, handle};
    return handle;
  }

  std::shared_ptr<prometheus::Registry> registry() override { return state_->registry; }

 private:
  // The last owner of `model` let go: remove its series, unless a newer
  // handle with the same labels took its place (it shares the very same
  // series objects), and keep the shared ones while another shape of the
  // same version is alive.
  static void Release(SharedState& state, const std::pair<std::string, std::string>& version,
                      const SharedState::ShapeKey& shape, ModelMetricsImpl* model) {
    {
      absl::MutexLock lock(&state.mu);
      auto shapes = state.live.find(version);
      if (shapes != state.live.end()) {
        auto slot = shapes->second.find(shape);
        if (slot != shapes->second.end() && slot->second.model == model) {
          shapes->second.erase(slot);
          const bool last = shapes->second.empty();
          if (last) state.live.erase(shapes);
          model->RemoveSeries(state.families, last);
        }
      }
    }
    delete model;
  }

  const std::shared_ptr<SharedState> state_;
};

class MetricsEndpointImpl : public MetricsEndpoint {
 public:
  MetricsEndpointImpl(std::unique_ptr<prometheus::Exposer> exposer,
                      std::shared_ptr<prometheus::Registry> registry, int port)
      : registry_(std::move(registry)), exposer_(std::move(exposer)), port_(port) {}

  int port() const override { return port_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;  // outlives exposer_
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace

std::unique_ptr<Metrics> Metrics::Create() { return std::make_unique<MetricsImpl>(); }

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address, int port, std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("metrics endpoint needs a registry");
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics port ", port, " out of range"));
  }
  // civetweb wants IPv6 literals in brackets.
  const std::string host = absl::StrContains(address, ':') && !absl::StartsWith(address, "[")
                               ? absl::StrCat("[", address, "]")
                               : address;
  const std::string bind = absl::StrCat(host, ":", port);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", bind, "num_threads", "2"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", bind, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("metrics not listening on ", bind));
  exposer->RegisterCollectable(registry, "/metrics");
  return std::make_unique<MetricsEndpointImpl>(std::move(exposer), std::move(registry), ports[0]);
}

}  // namespace sepconv
