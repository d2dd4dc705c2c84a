// Engine benchmarks (Google Benchmark): the separable layer on the
// foundation issue's six shapes and the MobileNet-v1 body (13 separable
// blocks with ReLU on 32x112x112) and a depth-multiplier block, fp32, NCHW in and out (conversions
// included), under every internal activation layout; plus this machine's
// fp32 peak (a large oneDNN matmul) and memory bandwidth (a large parallel
// copy) for the roofline. Each benchmark reports, besides Google Benchmark's
// mean, the median of per-iteration times (counter `median_ms`), its FLOPs
// and its compulsory bytes. tests/bench/run_engine_bench.py runs it beside
// PyTorch and prints one table; the JSON context gives `onednn_isa`.
//
// Flags: --threads=N (default 2), --cold (flush the caches before every timed
// run, as a served request finds them), --gap_us=N (sleep N microseconds
// before every timed run, as a request at one client finds the engine's
// threads and CPUs idle) and Google Benchmark's own (--benchmark_*).

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/executor.h"
#include "engine/flops.h"
#include "engine/internal/onednn_executor.h"
#include "engine/internal/plan_tuner.h"
#include "engine/random_model.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tests/testing/tensors.h"

namespace sepconv {
namespace {

int g_threads = 2;
int g_errors = 0;  // benchmarks that could not run; main exits non-zero
// --cold: every timed run of the engine starts with the caches flushed, as a
// request served after others' traffic does (the layout tuner's flush).
bool g_cold = false;
// --gap_us: the pause before every timed run, in which idle threads go to
// sleep and an idle virtual CPU may be descheduled by its host.
int g_gap_us = 0;

using Clock = std::chrono::steady_clock;

// Records per-iteration wall times and publishes their median.
class IterationTimer {
 public:
  explicit IterationTimer(benchmark::State& state) : state_(state) { times_.reserve(1 << 16); }
  ~IterationTimer() {
    if (times_.empty()) return;
    std::sort(times_.begin(), times_.end());
    state_.counters["median_ms"] = times_[times_.size() / 2] * 1e3;
    state_.counters["min_ms"] = times_.front() * 1e3;
  }
  template <typename F>
  void Time(F&& f) {
    const Clock::time_point start = Clock::now();
    f();
    times_.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }

 private:
  benchmark::State& state_;
  std::vector<double> times_;
};

using testing::Elements;
using testing::RandomTensor;

int64_t WeightElements(const ModelSpec& model) {
  int64_t total = 0;
  for (const Layer& layer : model.layers) {
    total += layer.weights.depthwise.size() + layer.weights.depthwise_bias.size() +
             layer.weights.pointwise.size() + layer.weights.pointwise_bias.size();
  }
  return total;
}

void BM_Engine(benchmark::State& state, std::shared_ptr<const ModelSpec> model, Dims4 dims,
               OneDnnTuning tuning) {
  ExecutorOptions options;
  options.threads = g_threads;
  auto executor = internal::CreateOneDnnExecutor(model, options, tuning);
  if (!executor.ok()) {
    ++g_errors;
    state.SkipWithError(executor.status().ToString().c_str());
    return;
  }
  const Dims4 out_dims = InferOutputShape(*model, dims).value();
  const std::vector<float> input = RandomTensor(Elements(dims), 1);
  std::vector<float> output(static_cast<size_t>(Elements(out_dims)));
  absl::StatusOr<FlopCount> flops = (*executor)->Run(dims, input.data(), output.data());  // warm
  if (!flops.ok()) {
    ++g_errors;
    state.SkipWithError(flops.status().ToString().c_str());
    return;
  }
  {
    const std::unique_ptr<internal::CacheEvictor> evictor =
        g_cold ? std::make_unique<internal::CacheEvictor>() : nullptr;
    IterationTimer timer(state);
    for (auto _ : state) {
      if (evictor != nullptr || g_gap_us > 0) {
        state.PauseTiming();
        if (evictor != nullptr) evictor->Evict();
        if (g_gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(g_gap_us));
        state.ResumeTiming();
      }
      timer.Time([&] {
        absl::StatusOr<FlopCount> run = (*executor)->Run(dims, input.data(), output.data());
        benchmark::DoNotOptimize(run);
      });
    }
  }
  const double separable = static_cast<double>(flops->depthwise + flops->pointwise);
  state.counters["flops"] = separable;
  state.counters["min_bytes"] =
      4.0 * static_cast<double>(Elements(dims) + Elements(out_dims) + WeightElements(*model));
  state.counters["GFLOPS"] =
      benchmark::Counter(separable * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (tuning.layout == ActivationLayout::kAuto) {
    if (std::optional<PlanChoice> chosen = internal::TunedChoice(*model, dims)) {
      state.SetLabel(absl::StrCat("chose ", Describe(*chosen)));
    }
  }
}

// Load to first request: each iteration forgets the tuned layouts, creates
// an executor (warming `dims` when `warm`, as a model_warmup does, which
// builds and tunes the plan) and runs one request of `dims`. Counters:
// `load_ms` (Create, incl. warm-up), `first_ms` (the first request) and
// `warm_ms` (the median of the next kWarmRuns requests), medians over
// iterations.
constexpr int kWarmRuns = 9;
void BM_FirstRequest(benchmark::State& state, std::shared_ptr<const ModelSpec> model, Dims4 dims,
                     bool warm) {
  const Dims4 out_dims = InferOutputShape(*model, dims).value();
  const std::vector<float> input = RandomTensor(Elements(dims), 1);
  std::vector<float> output(static_cast<size_t>(Elements(out_dims)));
  std::vector<double> load, first, second;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  for (auto _ : state) {
    internal::ClearTunedChoices();
    ExecutorOptions options;
    options.threads = g_threads;
    if (warm) options.warm_shapes = {dims};
    const Clock::time_point t0 = Clock::now();
    auto executor = Executor::Create(model, options);
    const Clock::time_point t1 = Clock::now();
    if (!executor.ok() || !(*executor)->Run(dims, input.data(), output.data()).ok()) {
      ++g_errors;
      state.SkipWithError("executor failed");
      return;
    }
    const Clock::time_point t2 = Clock::now();
    // A warm request: the median of the next kWarmRuns.
    std::vector<double> warm_runs;
    for (int i = 0; i < kWarmRuns; ++i) {
      const Clock::time_point a = Clock::now();
      benchmark::DoNotOptimize((*executor)->Run(dims, input.data(), output.data()));
      warm_runs.push_back(ms(a, Clock::now()));
    }
    std::sort(warm_runs.begin(), warm_runs.end());
    load.push_back(ms(t0, t1));
    first.push_back(ms(t1, t2));
    second.push_back(warm_runs[warm_runs.size() / 2]);
  }
  auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  state.counters["load_ms"] = median(load);
  state.counters["first_ms"] = median(first);
  state.counters["warm_ms"] = median(second);
}

// Peak fp32 throughput: a large 1x1 convolution through oneDNN (1024 -> 1024
// channels on 32x32, 2.1 GFLOP), activations and weights in the layouts the
// kernel prefers (format `any`, weights reordered once), the engine's own
// heaviest primitive at its best. Not torch.mm: Debian's reference BLAS is
// no peak.
void BM_PeakConv1x1(benchmark::State& state) {
  omp_set_num_threads(g_threads);
  using dnnl::memory;
  const int64_t c = 1024, hw = 32;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc act({1, c, hw, hw}, memory::data_type::f32, memory::format_tag::any);
  const memory::desc weights_any({c, c, 1, 1}, memory::data_type::f32, memory::format_tag::any);
  const dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, act, weights_any, act,
                                      {1, 1}, {0, 0}, {0, 0}),
      engine);
  memory src(pd.src_desc(), engine), w(pd.weights_desc(), engine), dst(pd.dst_desc(), engine);
  std::fill_n(static_cast<float*>(src.get_data_handle()), pd.src_desc().get_size() / 4, 0.5f);
  std::fill_n(static_cast<float*>(w.get_data_handle()), pd.weights_desc().get_size() / 4, 0.25f);
  dnnl::convolution_forward conv(pd);
  const std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
  conv.execute(stream, args);
  stream.wait();
  {
    IterationTimer timer(state);
    for (auto _ : state) {
      timer.Time([&] {
        conv.execute(stream, args);
        stream.wait();
      });
    }
  }
  const double flops = 2.0 * c * c * hw * hw;
  state.counters["flops"] = flops;
  state.counters["GFLOPS"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(pd.impl_info_str());
}

// Memory bandwidth: a parallel copy of 256 MiB (bytes read + bytes written).
void BM_Copy(benchmark::State& state) {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  {
    IterationTimer timer(state);
    for (auto _ : state) {
      timer.Time([&] {
#pragma omp parallel for num_threads(g_threads) schedule(static)
        for (int chunk = 0; chunk < 256; ++chunk) {
          std::memcpy(dst.data() + (static_cast<size_t>(chunk) << 20),
                      src.data() + (static_cast<size_t>(chunk) << 20), size_t{1} << 20);
        }
        benchmark::DoNotOptimize(dst.data());
      });
    }
  }
  state.counters["bytes"] = 2.0 * bytes;
  state.counters["GBps"] =
      benchmark::Counter(2.0 * bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

LayerSpec Block(int64_t in, int64_t out, int64_t stride, Activation act) {
  LayerSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.stride = stride;
  s.depthwise_activation = act;
  s.pointwise_activation = act;
  return s;
}

// MobileNet-v1's 13 depthwise-separable blocks (after its first conv).
std::vector<LayerSpec> MobileNetBody() {
  const Activation r = Activation::kRelu;
  std::vector<LayerSpec> specs = {Block(32, 64, 1, r),   Block(64, 128, 2, r),
                                  Block(128, 128, 1, r), Block(128, 256, 2, r),
                                  Block(256, 256, 1, r), Block(256, 512, 2, r)};
  for (int i = 0; i < 5; ++i) specs.push_back(Block(512, 512, 1, r));
  specs.push_back(Block(512, 1024, 2, r));
  specs.push_back(Block(1024, 1024, 1, r));
  return specs;
}

void RegisterAll() {
  struct Case {
    std::string name;
    std::shared_ptr<const ModelSpec> model;
    Dims4 dims;
  };
  std::vector<Case> cases;
  const int64_t seed_shapes[][4] = {{1, 32, 64, 112},  {1, 128, 128, 56},  {1, 512, 512, 14},
                                    {16, 32, 64, 112}, {16, 128, 128, 56}, {16, 512, 512, 14}};
  for (const auto& s : seed_shapes) {
    LayerSpec spec;
    spec.in_channels = s[1];
    spec.out_channels = s[2];
    cases.push_back({absl::StrCat("sepconv/", s[0], "x", s[1], "-", s[2], "x", s[3]),
                     std::make_shared<const ModelSpec>(MakeRandomModel({spec}, 0).value()),
                     Dims4{s[0], s[1], s[3], s[3]}});
  }
  // Depth multiplier > 1 (the loader's test model (b) has such a block):
  // 24->40, 5x5, stride 2, ReLU6 on 56x56, with dm 1 as the yardstick.
  for (const auto& [n, dm] : {std::pair<int64_t, int64_t>{1, 1}, {1, 2}, {1, 3}, {16, 2}}) {
    LayerSpec spec = Block(24, 40, 2, Activation::kRelu6);
    spec.kernel = 5;
    spec.depth_multiplier = dm;
    cases.push_back({absl::StrCat("sepconv_dm/", n, "x24-40x56_k5s2dm", dm),
                     std::make_shared<const ModelSpec>(MakeRandomModel({spec}, 0).value()),
                     Dims4{n, 24, 56, 56}});
  }
  auto mobilenet = std::make_shared<const ModelSpec>(MakeRandomModel(MobileNetBody(), 0).value());
  for (int64_t n : {1, 8}) {
    cases.push_back(
        {absl::StrCat("mobilenet_body/", n, "x32x112"), mobilenet, Dims4{n, 32, 112, 112}});
  }
  auto add = [](const std::string& name, const Case& c, OneDnnTuning tuning) {
    benchmark::RegisterBenchmark(name.c_str(), BM_Engine, c.model, c.dims, tuning)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  for (const Case& c : cases) {
    for (ActivationLayout layout : {ActivationLayout::kAuto, ActivationLayout::kNhwc,
                                    ActivationLayout::kBlocked8, ActivationLayout::kBlocked16,
                                    ActivationLayout::kNhwcDirect, ActivationLayout::kFusedNchw}) {
      add(absl::StrCat(c.name, "/", LayoutName(layout)), c, OneDnnTuning{layout, 0});
      // Micro-batch variants, to tune kMicroBatchBytes: "mbN" runs N samples
      // per execution.
      if (c.dims.n == 1) continue;
      for (int64_t micro : {int64_t{1}, int64_t{2}, int64_t{4}, c.dims.n}) {
        add(absl::StrCat(c.name, "/", LayoutName(layout), "/mb", micro), c,
            OneDnnTuning{layout, micro});
      }
    }
  }
  for (const Case& c : cases) {
    for (bool warm : {false, true}) {
      benchmark::RegisterBenchmark(
          absl::StrCat("first_request/", c.name, warm ? "/warmed" : "/cold").c_str(),
          BM_FirstRequest, c.model, c.dims, warm)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RegisterBenchmark("roofline/peak_conv1x1_1024x32", BM_PeakConv1x1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("roofline/copy_256MiB", BM_Copy)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  // Our own flag first; Google Benchmark rejects what it does not know.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      sepconv::g_threads = std::max(1, std::atoi(argv[i] + 10));
    } else if (std::strcmp(argv[i], "--cold") == 0) {
      sepconv::g_cold = true;
    } else if (std::strncmp(argv[i], "--gap_us=", 9) == 0) {
      sepconv::g_gap_us = std::max(0, std::atoi(argv[i] + 9));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  omp_set_num_threads(sepconv::g_threads);
  sepconv::RegisterAll();
  benchmark::AddCustomContext("onednn_isa", sepconv::EffectiveIsaName());
  benchmark::AddCustomContext("caches", sepconv::g_cold ? "cold" : "warm");
  benchmark::AddCustomContext("gap_us", std::to_string(sepconv::g_gap_us));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // A filter that matches nothing, or a benchmark that failed, is an error
  // (the smoke test relies on it).
  return ran > 0 && sepconv::g_errors == 0 ? 0 : 1;
}
