// The exposition text after known sequences of recordings carries exactly the
// expected counts, sums and bucket counts.

#include "server/metrics/metrics.h"

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/testing/exposition.h"

namespace sepconv {
namespace {

using testing::Exposition;
using testing::SampleLabels;

constexpr absl::StatusCode kAllCodes[] = {
    absl::StatusCode::kOk,
    absl::StatusCode::kCancelled,
    absl::StatusCode::kUnknown,
    absl::StatusCode::kInvalidArgument,
    absl::StatusCode::kDeadlineExceeded,
    absl::StatusCode::kNotFound,
    absl::StatusCode::kAlreadyExists,
    absl::StatusCode::kPermissionDenied,
    absl::StatusCode::kResourceExhausted,
    absl::StatusCode::kFailedPrecondition,
    absl::StatusCode::kAborted,
    absl::StatusCode::kOutOfRange,
    absl::StatusCode::kUnimplemented,
    absl::StatusCode::kInternal,
    absl::StatusCode::kUnavailable,
    absl::StatusCode::kDataLoss,
    absl::StatusCode::kUnauthenticated,
};

// The buckets of the duration histograms, 50us .. 10s (docs/architecture.md,
// "Metrics").
const std::vector<double> kDurationBounds = {50e-6,  100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
                                             5e-3,   10e-3,  25e-3,  50e-3,  100e-3, 250e-3,
                                             500e-3, 1,      2.5,    5,      10};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128};

ModelLabels DefaultModel() { return {"sepconv", "1", 1, 32, 64}; }
SampleLabels Base() { return {{"model", "sepconv"}, {"version", "1"}}; }
SampleLabels With(SampleLabels labels, const std::string& name, const std::string& value) {
  labels[name] = value;
  return labels;
}

Exposition Scrape(Metrics& metrics) {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, metrics.registry()->Collect());
  absl::StatusOr<Exposition> parsed = Exposition::Parse(text.str());
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text.str();
  return parsed.ok() ? *std::move(parsed) : Exposition();
}

double ValueOr(const Exposition& e, const std::string& name, const SampleLabels& labels,
               double missing = NAN) {
  return e.Value(name, labels).value_or(missing);
}

// Checks a histogram against the raw observations: every bucket holds the
// number of observations <= its bound, +Inf and _count hold all, _sum the sum.
void ExpectHistogram(const Exposition& e, const std::string& name, const SampleLabels& labels,
                     const std::vector<double>& bounds, const std::vector<double>& observed) {
  std::vector<std::pair<double, double>> buckets = e.Buckets(name, labels);
  ASSERT_EQ(buckets.size(), bounds.size() + 1) << name;
  double sum = 0;
  for (double v : observed) sum += v;
  for (size_t i = 0; i < bounds.size(); ++i) {
    EXPECT_DOUBLE_EQ(buckets[i].first, bounds[i]) << name;
    double expected = 0;
    for (double v : observed) expected += v <= bounds[i] ? 1 : 0;
    EXPECT_EQ(buckets[i].second, expected) << name << " le=" << bounds[i];
  }
  EXPECT_TRUE(std::isinf(buckets.back().first)) << name;
  EXPECT_EQ(buckets.back().second, observed.size()) << name;
  EXPECT_EQ(ValueOr(e, name + "_count", labels), observed.size()) << name;
  EXPECT_NEAR(ValueOr(e, name + "_sum", labels), sum, 1e-9 * (1 + sum)) << name;
}

TEST(MetricsTest, FamiliesHaveDesignNamesAndTypes) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  Exposition e = Scrape(*metrics);
  const std::pair<const char*, const char*> kTypes[] = {
      {"sepconv_inference_requests_total", "counter"},
      {"sepconv_inference_samples_total", "counter"},
      {"sepconv_inference_executions_total", "counter"},
      {"sepconv_request_duration_seconds", "histogram"},
      {"sepconv_queue_duration_seconds", "histogram"},
      {"sepconv_compute_duration_seconds", "histogram"},
      {"sepconv_batch_size", "histogram"},
      {"sepconv_flops_total", "counter"},
      {"sepconv_standard_conv_flops_total", "counter"},
      {"sepconv_pending_requests", "gauge"},
      {"sepconv_model_info", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  for (const auto& [name, type] : kTypes) EXPECT_EQ(e.Type(name), type) << name;
  // Fresh series start at zero, every status code pre-created.
  EXPECT_EQ(e.Count("sepconv_inference_requests_total"), std::size(kAllCodes));
  EXPECT_EQ(ValueOr(e, "sepconv_inference_samples_total", Base()), 0);
  EXPECT_EQ(ValueOr(e, "sepconv_pending_requests", Base()), 0);
  EXPECT_EQ(ValueOr(e, "sepconv_request_duration_seconds_count", Base()), 0);
}

TEST(MetricsTest, RequestsCountedByFinalStatus) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  // Successes and every failure kind the server produces, with their times.
  const std::vector<std::pair<absl::StatusCode, absl::Duration>> kRequests = {
      {absl::StatusCode::kOk, absl::Microseconds(700)},
      {absl::StatusCode::kOk, absl::Milliseconds(3)},
      {absl::StatusCode::kOk, absl::Microseconds(50)},  // exactly on a bound
      {absl::StatusCode::kInvalidArgument, absl::Microseconds(20)},
      {absl::StatusCode::kInvalidArgument, absl::Microseconds(30)},
      {absl::StatusCode::kNotFound, absl::Microseconds(10)},
      {absl::StatusCode::kResourceExhausted, absl::Microseconds(40)},
      {absl::StatusCode::kDeadlineExceeded, absl::Milliseconds(2000)},
      {absl::StatusCode::kCancelled, absl::Milliseconds(300)},
      {absl::StatusCode::kUnavailable, absl::Milliseconds(7)},
      {absl::StatusCode::kUnauthenticated, absl::Microseconds(5)},
      {absl::StatusCode::kInternal, absl::Seconds(30)},  // beyond the last bound
  };
  std::vector<double> observed;
  std::map<std::string, double> expected_counts;
  for (const auto& [code, duration] : kRequests) {
    model->RequestDone(code, duration);
    observed.push_back(absl::ToDoubleSeconds(duration));
    expected_counts[code == absl::StatusCode::kOk ? "ok" : absl::StatusCodeToString(code)] += 1;
  }
  Exposition e = Scrape(*metrics);
  for (absl::StatusCode code : kAllCodes) {
    const std::string status =
        code == absl::StatusCode::kOk ? "ok" : absl::StatusCodeToString(code);
    EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", status)),
              expected_counts[status])
        << status;
  }
  // Spot checks of the above, written out.
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "ok")), 3);
  EXPECT_EQ(
      ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "INVALID_ARGUMENT")),
      2);
  EXPECT_EQ(
      ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "RESOURCE_EXHAUSTED")),
      1);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "ABORTED")), 0);
  ExpectHistogram(e, "sepconv_request_duration_seconds", Base(), kDurationBounds, observed);
  // Spot checks: 6 requests took <= 50us (le is inclusive), one is past 10s.
  std::vector<std::pair<double, double>> buckets =
      e.Buckets("sepconv_request_duration_seconds", Base());
  EXPECT_EQ(buckets.front().second, 6);
  EXPECT_EQ(buckets[buckets.size() - 2].second, 11);
  // Requests alone compute nothing.
  EXPECT_EQ(ValueOr(e, "sepconv_inference_executions_total", Base()), 0);
}

TEST(MetricsTest, OutOfRangeCodeCountsAsUnknownAndNegativeTimeAsZero) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  model->RequestDone(static_cast<absl::StatusCode>(99), absl::Microseconds(-5));
  Exposition e = Scrape(*metrics);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "UNKNOWN")), 1);
  EXPECT_EQ(ValueOr(e, "sepconv_request_duration_seconds_sum", Base()), 0);
  EXPECT_EQ(e.Buckets("sepconv_request_duration_seconds", Base()).front().second, 1);
}

// FLOPs of the default model (32 -> 64 channels, 3x3, stride 1) on n x 16 x 16.
FlopCount DefaultModelFlops(int64_t n) {
  const int64_t positions = n * 16 * 16;
  return {2 * positions * 9 * 32, 2 * positions * 32 * 64, 2 * positions * 9 * 32 * 64};
}

TEST(MetricsTest, BatchedAndUnbatchedExecutions) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  // Two unbatched runs, a full batch of 8 and a partial batch of 3.
  const std::vector<std::pair<int64_t, absl::Duration>> kBatches = {
      {1, absl::Microseconds(400)},
      {1, absl::Microseconds(450)},
      {8, absl::Milliseconds(3)},
      {3, absl::Milliseconds(1)},
  };
  std::vector<double> sizes, computes;
  FlopCount total;
  for (const auto& [samples, compute] : kBatches) {
    model->BatchExecuted(samples, compute, DefaultModelFlops(samples));
    sizes.push_back(static_cast<double>(samples));
    computes.push_back(absl::ToDoubleSeconds(compute));
    total += DefaultModelFlops(samples);
  }
  Exposition e = Scrape(*metrics);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_executions_total", Base()), 4);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_samples_total", Base()), 13);
  ExpectHistogram(e, "sepconv_batch_size", Base(), kBatchBounds, sizes);
  ExpectHistogram(e, "sepconv_compute_duration_seconds", Base(), kDurationBounds, computes);
  // Written out: le=1 holds the two unbatched runs, le=4 adds the batch of 3.
  std::vector<std::pair<double, double>> batch = e.Buckets("sepconv_batch_size", Base());
  EXPECT_EQ(batch[0].second, 2);
  EXPECT_EQ(batch[1].second, 2);
  EXPECT_EQ(batch[2].second, 3);
  EXPECT_EQ(batch[3].second, 4);

  const double depthwise = ValueOr(e, "sepconv_flops_total", With(Base(), "op", "depthwise"));
  const double pointwise = ValueOr(e, "sepconv_flops_total", With(Base(), "op", "pointwise"));
  const double standard = ValueOr(e, "sepconv_standard_conv_flops_total", Base());
  EXPECT_EQ(depthwise, static_cast<double>(total.depthwise));
  EXPECT_EQ(pointwise, static_cast<double>(total.pointwise));
  EXPECT_EQ(standard, static_cast<double>(total.standard));
  EXPECT_NEAR((depthwise + pointwise) / standard, 1.0 / 64 + 1.0 / 9, 1e-12);
}

TEST(MetricsTest, QueueTimesAndPendingGauge) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  const std::vector<double> queued = {0, 80e-6, 600e-6, 0.02};
  for (double q : queued) model->QueueTime(absl::Seconds(q));
  model->PendingAdd(1);
  model->PendingAdd(1);
  model->PendingAdd(1);
  model->PendingAdd(-1);
  Exposition e = Scrape(*metrics);
  ExpectHistogram(e, "sepconv_queue_duration_seconds", Base(), kDurationBounds, queued);
  EXPECT_EQ(ValueOr(e, "sepconv_pending_requests", Base()), 2);
  model->PendingAdd(-2);
  EXPECT_EQ(ValueOr(Scrape(*metrics), "sepconv_pending_requests", Base()), 0);
}

TEST(MetricsTest, ModelsAreSeparateSeriesWithInfo) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> a = metrics->ForModel(DefaultModel());
  std::shared_ptr<ModelMetrics> b = metrics->ForModel({"mobilenet", "2", 13, 32, 1024});
  EXPECT_NE(a, b);
  EXPECT_EQ(metrics->ForModel(DefaultModel()), a);  // same labels, same handle
  a->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  b->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  b->RequestDone(absl::StatusCode::kNotFound, absl::Milliseconds(1));
  Exposition e = Scrape(*metrics);
  const SampleLabels mobilenet = {{"model", "mobilenet"}, {"version", "2"}};
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "ok")), 1);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(mobilenet, "status", "ok")), 1);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(mobilenet, "status", "NOT_FOUND")),
            1);
  EXPECT_EQ(ValueOr(e, "sepconv_model_info",
                    {{"model", "sepconv"},
                     {"version", "1"},
                     {"layers", "1"},
                     {"in_channels", "32"},
                     {"out_channels", "64"}}),
            1);
  EXPECT_EQ(ValueOr(e, "sepconv_model_info",
                    {{"model", "mobilenet"},
                     {"version", "2"},
                     {"layers", "13"},
                     {"in_channels", "32"},
                     {"out_channels", "1024"}}),
            1);
  EXPECT_EQ(e.Count("sepconv_model_info"), 2);
}

TEST(MetricsTest, ReleasedVersionLeavesTheExposition) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> v1 = metrics->ForModel(DefaultModel());
  std::shared_ptr<ModelMetrics> v2 = metrics->ForModel({"sepconv", "2", 1, 32, 64});
  std::shared_ptr<ModelMetrics> job = v1;  // e.g. a request still completing
  v1->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  const SampleLabels version1 = Base();
  const SampleLabels version2 = With(Base(), "version", "2");
  Exposition e = Scrape(*metrics);
  const int per_version = e.CountMatching(version1);
  EXPECT_GT(per_version, 50);  // every family's series, histograms' buckets
  EXPECT_EQ(e.CountMatching(version2), per_version);

  v1.reset();  // unloaded, but the request still holds the handle
  EXPECT_EQ(Scrape(*metrics).CountMatching(version1), per_version);
  job->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  e = Scrape(*metrics);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(version1, "status", "ok")), 2);

  job.reset();  // the last owner
  e = Scrape(*metrics);
  EXPECT_EQ(e.CountMatching(version1), 0);
  EXPECT_EQ(e.CountMatching(version2), per_version);
  EXPECT_EQ(e.Count("sepconv_model_info"), 1);
  EXPECT_EQ(
      ValueOr(e, "sepconv_model_info",
              With(With(With(version2, "layers", "1"), "in_channels", "32"), "out_channels", "64")),
      1);

  // Loaded again later: fresh series from zero.
  v1 = metrics->ForModel(DefaultModel());
  e = Scrape(*metrics);
  EXPECT_EQ(e.CountMatching(version1), per_version);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(version1, "status", "ok")), 0);
}

TEST(MetricsTest, ReloadWithAnotherShapeKeepsSharedSeriesUntilBothGo) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> old_shape = metrics->ForModel(DefaultModel());
  std::shared_ptr<ModelMetrics> new_shape = metrics->ForModel({"sepconv", "1", 2, 32, 16});
  EXPECT_NE(old_shape, new_shape);
  old_shape->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  new_shape->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  EXPECT_EQ(Scrape(*metrics).Count("sepconv_model_info"), 2);

  old_shape.reset();
  Exposition e = Scrape(*metrics);
  EXPECT_EQ(e.Count("sepconv_model_info"), 1);
  EXPECT_EQ(ValueOr(e, "sepconv_model_info", With(Base(), "out_channels", "16"), -1), -1);
  EXPECT_EQ(ValueOr(e, "sepconv_model_info",
                    {{"model", "sepconv"},
                     {"version", "1"},
                     {"layers", "2"},
                     {"in_channels", "32"},
                     {"out_channels", "16"}}),
            1);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "ok")), 2);

  new_shape.reset();
  EXPECT_EQ(Scrape(*metrics).CountMatching(Base()), 0);
}

TEST(MetricsTest, HandleMayOutliveMetrics) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  metrics.reset();
  model->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(1));
  model->PendingAdd(1);
  model.reset();  // removes its series from the registry it kept alive
}

TEST(MetricsTest, ConcurrentAcquireAndReleaseOfOneVersion) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < kRounds; ++i) {
        std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
        model->RequestDone(absl::StatusCode::kOk, absl::Microseconds(1));
      }
    });
  }
  std::shared_ptr<ModelMetrics> kept = metrics->ForModel({"sepconv", "2", 1, 32, 64});
  for (std::thread& thread : threads) thread.join();
  Exposition e = Scrape(*metrics);
  EXPECT_EQ(e.CountMatching(Base()), 0);
  EXPECT_GT(e.CountMatching(With(Base(), "version", "2")), 0);
  // The one left recording proves no series was freed under a live handle.
  std::shared_ptr<ModelMetrics> again = metrics->ForModel(DefaultModel());
  again->RequestDone(absl::StatusCode::kOk, absl::Microseconds(1));
  EXPECT_EQ(
      ValueOr(Scrape(*metrics), "sepconv_inference_requests_total", With(Base(), "status", "ok")),
      1);
}

TEST(MetricsTest, ConcurrentRecordingLosesNothing) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([model, t] {
      for (int i = 0; i < kPerThread; ++i) {
        model->PendingAdd(1);
        model->QueueTime(absl::Microseconds(10));
        model->PendingAdd(-1);
        model->BatchExecuted(1, absl::Microseconds(100), DefaultModelFlops(1));
        model->RequestDone(t % 2 == 0 ? absl::StatusCode::kOk : absl::StatusCode::kCancelled,
                           absl::Microseconds(200));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  Exposition e = Scrape(*metrics);
  const double total = kThreads * kPerThread;
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "ok")),
            total / 2);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_requests_total", With(Base(), "status", "CANCELLED")),
            total / 2);
  EXPECT_EQ(ValueOr(e, "sepconv_request_duration_seconds_count", Base()), total);
  EXPECT_EQ(ValueOr(e, "sepconv_queue_duration_seconds_count", Base()), total);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_executions_total", Base()), total);
  EXPECT_EQ(ValueOr(e, "sepconv_inference_samples_total", Base()), total);
  EXPECT_EQ(ValueOr(e, "sepconv_standard_conv_flops_total", Base()),
            total * static_cast<double>(DefaultModelFlops(1).standard));
  EXPECT_EQ(ValueOr(e, "sepconv_pending_requests", Base()), 0);
}

TEST(MetricsTest, BatchDelayAndOverheadHistograms) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel(DefaultModel());
  const std::vector<double> kHeld = {0, 0, 30e-6, 500e-6, 2e-3};
  const std::vector<double> kOverhead = {40e-6, 80e-6, 700e-6};
  for (double held : kHeld) model->BatchHeld(absl::Seconds(held));
  for (double overhead : kOverhead) model->RequestOverhead(absl::Seconds(overhead));
  model->RequestOverhead(-absl::Microseconds(5));  // clock skew counts as zero
  Exposition e = Scrape(*metrics);
  EXPECT_EQ(e.Type("sepconv_batch_delay_seconds"), "histogram");
  EXPECT_EQ(e.Type("sepconv_overhead_duration_seconds"), "histogram");
  ExpectHistogram(
      e, "sepconv_batch_delay_seconds", Base(),
      {0, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3},
      kHeld);
  std::vector<double> overheads = kOverhead;
  overheads.push_back(0);
  ExpectHistogram(
      e, "sepconv_overhead_duration_seconds", Base(),
      {10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
      overheads);
}

}  // namespace
}  // namespace sepconv
