// What recording metrics costs per request, next to what serving a request of
// the default model costs, in one run: the "metrics" figure of the report.
//
//   BM_RecordRequest/threads:T   every ModelMetrics call one unbatched request
//                                makes (PendingAdd +-1, QueueTime,
//                                BatchExecuted, RequestDone), from T threads
//                                on one model's series (contention shows here)
//   BM_Scrape                    one /metrics exposition (Collect + serialize)
//   BM_DefaultModel/H            one engine run of the default model on
//                                1x32xHxH, 1 thread: the work each recording
//                                rides along with
//
// The ratio recording / compute is the throughput cost of metrics.

#include <benchmark/benchmark.h>

#include <memory>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "engine/random_model.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/metrics.h"

namespace sepconv {
namespace {

Metrics& SharedMetrics() {
  static Metrics* metrics = Metrics::Create().release();
  return *metrics;
}

ModelMetrics* SharedModel() {
  // Held for the process's lifetime: releasing the handle removes the series.
  static auto* model =
      new std::shared_ptr<ModelMetrics>(SharedMetrics().ForModel({"sepconv", "1", 1, 32, 64}));
  return model->get();
}

void BM_RecordRequest(benchmark::State& state) {
  ModelMetrics* model = SharedModel();
  const FlopCount flops{2 * 56 * 56 * 9 * 32, 2 * 56 * 56 * 32 * 64, 2 * 56 * 56 * 9 * 32 * 64};
  for (auto _ : state) {
    model->PendingAdd(1);
    model->QueueTime(absl::Microseconds(120));
    model->PendingAdd(-1);
    model->BatchExecuted(1, absl::Microseconds(800), flops);
    model->RequestDone(absl::StatusCode::kOk, absl::Microseconds(950));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordRequest)->Threads(1)->Threads(2)->Threads(16)->UseRealTime();

void BM_Scrape(benchmark::State& state) {
  SharedModel();
  std::shared_ptr<prometheus::Registry> registry = SharedMetrics().registry();
  for (auto _ : state) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry->Collect());
    benchmark::DoNotOptimize(out.str());
  }
}
BENCHMARK(BM_Scrape)->Unit(benchmark::kMicrosecond);

void BM_DefaultModel(benchmark::State& state) {
  const int64_t hw = state.range(0);
  auto spec = std::make_shared<const ModelSpec>(DefaultModel());
  ExecutorOptions options;
  options.threads = 1;
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(spec, options);
  if (!executor.ok()) {
    state.SkipWithError(std::string(executor.status().message()).c_str());
    return;
  }
  const Dims4 dims{1, 32, hw, hw};
  std::vector<float> input(32 * hw * hw, 0.5f), output(64 * hw * hw);
  for (auto _ : state) {
    absl::StatusOr<FlopCount> flops = (*executor)->Run(dims, input.data(), output.data());
    if (!flops.ok()) {
      state.SkipWithError("run failed");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DefaultModel)->Arg(16)->Arg(56)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sepconv

BENCHMARK_MAIN();
