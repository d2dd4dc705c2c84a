// XNNPACK anchor benchmarks (Google Benchmark): the separable layer on
// engine_bench's six shapes and the MobileNet-v1 body (13 separable blocks
// with ReLU on 32x112x112), fp32, through XNNPACK's NHWC convolutions
// (depthwise 3x3, then pointwise 1x1): the strongest depthwise/pointwise
// anchor to compare the engine against. NHWC in and out, XNNPACK's native
// layout: no conversions are charged to it. Operators are created (weights
// packed) and set up once, buffers allocated once: only xnn_run_operator is
// timed. Names are engine_bench's without the layout suffix; counters
// `median_ms` (median of per-iteration times), `flops`, `GFLOPS`; the JSON
// context gives `threads` and `xnnpack_version`.
//
// Run: build/tests/bench/xnnpack_bench --threads=2 --benchmark_min_time=0.3
// Flags: --threads=N (default 2); --check (two small layers against a naive
// NHWC reference, no benchmarks; exits non-zero on a mismatch); and Google
// Benchmark's own (--benchmark_*).

#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "benchmark/benchmark.h"

namespace sepconv {
namespace {

constexpr char kXnnpackVersion[] = "0.0~git20220216";  // Debian's libxnnpack-dev
constexpr int64_t kKernel = 3;                         // depthwise 3x3, pad 1
constexpr float kInf = std::numeric_limits<float>::infinity();

using Millis = std::chrono::duration<double, std::milli>;

int g_threads = 2;
int g_errors = 0;  // benchmarks that could not run; main exits non-zero

// With --threads=1 it stays null: XNNPACK then runs each operator inline on
// the calling thread, with no pool to dispatch through.
std::unique_ptr<pthreadpool, decltype(&pthreadpool_destroy)> g_pool(nullptr, pthreadpool_destroy);

using Operator = std::unique_ptr<xnn_operator, decltype(&xnn_delete_operator)>;

// Output activation as XNNPACK's output_min/output_max.
struct Clamp {
  float min;
  float max;
};
constexpr Clamp kNone{-kInf, kInf};
constexpr Clamp kRelu{0.0f, kInf};
constexpr Clamp kRelu6{0.0f, 6.0f};

// One separable block: depthwise 3x3 (stride, pad 1, bias) then pointwise
// 1x1 (bias), both outputs clamped by `clamp`. Depth multiplier 1.
struct Block {
  int64_t in = 0, out = 0, stride = 1;
  Clamp clamp = kNone;
  std::vector<float> dw, dw_bias;  // dw: [3][3][in], XNNPACK's depthwise HWGo
  std::vector<float> pw, pw_bias;  // pw: [out][in] (OHWI with 1x1)
};

int64_t OutSize(int64_t size, int64_t stride) { return (size + 2 - kKernel) / stride + 1; }

// Fills `v` in place (its buffer stays where the operators were set up).
void FillRandom(std::vector<float>& v, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  for (float& x : v) x = dist(rng);
}

Block MakeBlock(int64_t in, int64_t out, int64_t stride, Clamp clamp, std::mt19937& rng) {
  using V = std::vector<float>;
  Block b{in, out, stride, clamp, V(kKernel * kKernel * in), V(in), V(out * in), V(out)};
  for (V* v : {&b.dw, &b.dw_bias, &b.pw, &b.pw_bias}) FillRandom(*v, rng);
  return b;
}

// A chain of blocks on one input shape: operators created and set up once,
// activation buffers (input, then each operator's output) allocated once.
class Network {
 public:
  // Returns an empty string on success, else what failed.
  std::string Init(const std::vector<Block>& blocks, int64_t n, int64_t h, int64_t w) {
    buffers_.reserve(2 * blocks.size() + 1);  // no reallocation: set-up pointers stay valid
    buffers_.emplace_back(static_cast<size_t>(n * h * w * blocks.front().in));
    for (const Block& b : blocks) {
      const int64_t ho = OutSize(h, b.stride), wo = OutSize(w, b.stride);
      buffers_.emplace_back(static_cast<size_t>(n * ho * wo * b.in));   // depthwise output
      buffers_.emplace_back(static_cast<size_t>(n * ho * wo * b.out));  // pointwise output
      if (!AddConv(b, /*depthwise=*/true, n, h, w) || !AddConv(b, /*depthwise=*/false, n, ho, wo)) {
        return "xnn_create/setup_convolution2d_nhwc_f32 failed in block " +
               std::to_string(buffers_.size() / 2 - 1);
      }
      h = ho;
      w = wo;
    }
    return "";
  }
  bool Run() const {
    for (const Operator& op : ops_) {
      if (xnn_run_operator(op.get(), g_pool.get()) != xnn_status_success) return false;
    }
    return true;
  }
  void FillInput(std::mt19937& rng) { FillRandom(buffers_.front(), rng); }
  const std::vector<float>& input() const { return buffers_.front(); }
  const std::vector<float>& output() const { return buffers_.back(); }

 private:
  // Depthwise: groups = channels, 1 input and 1 output channel per group,
  // 3x3 stride s pad 1, HWGo weights (XNN_FLAG_DEPTHWISE_CONVOLUTION).
  // Pointwise: one group, 1x1. Reads buffers_[k], writes buffers_[k + 1].
  bool AddConv(const Block& b, bool depthwise, int64_t n, int64_t h, int64_t w) {
    const size_t k = ops_.size();
    const uint32_t pad = depthwise ? 1 : 0, size = depthwise ? kKernel : 1;
    const uint32_t stride = depthwise ? b.stride : 1, groups = depthwise ? b.in : 1;
    const size_t group_in = depthwise ? 1 : b.in, group_out = depthwise ? 1 : b.out;
    const size_t out_channels = depthwise ? b.in : b.out;
    xnn_operator_t op = nullptr;
    xnn_status status = xnn_create_convolution2d_nhwc_f32(
        pad, pad, pad, pad, size, size, stride, stride, /*dilation=*/1, 1, groups, group_in,
        group_out, /*input_channel_stride=*/b.in, out_channels,
        depthwise ? b.dw.data() : b.pw.data(), depthwise ? b.dw_bias.data() : b.pw_bias.data(),
        b.clamp.min, b.clamp.max, depthwise ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0, &op);
    if (status != xnn_status_success) return false;
    ops_.emplace_back(op, xnn_delete_operator);
    status = xnn_setup_convolution2d_nhwc_f32(op, n, h, w, buffers_[k].data(),
                                              buffers_[k + 1].data(), g_pool.get());
    return status == xnn_status_success;
  }

  std::vector<Operator> ops_;
  std::vector<std::vector<float>> buffers_;
};

// 2 * N * Ho * Wo * (C * 3 * 3 + C * Cout), summed over the blocks.
double Flops(const std::vector<Block>& blocks, int64_t n, int64_t hw) {
  double total = 0;
  for (const Block& b : blocks) {
    hw = OutSize(hw, b.stride);
    total += 2.0 * n * hw * hw * (b.in * kKernel * kKernel + b.in * b.out);
  }
  return total;
}

void BM_Xnnpack(benchmark::State& state, std::shared_ptr<const std::vector<Block>> blocks,
                int64_t n, int64_t hw) {
  Network net;
  std::string error = net.Init(*blocks, n, hw, hw);
  std::mt19937 rng(1);
  net.FillInput(rng);
  if (error.empty() && !net.Run()) error = "xnn_run_operator failed";  // warm
  if (!error.empty()) {
    ++g_errors;
    state.SkipWithError(error.c_str());
    return;
  }
  // Per-iteration wall times, for the median.
  std::vector<double> ms;
  ms.reserve(1 << 16);
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const bool ok = net.Run();
    ms.push_back(Millis(std::chrono::steady_clock::now() - start).count());
    if (!ok) {
      ++g_errors;
      state.SkipWithError("xnn_run_operator failed");
      break;
    }
  }
  benchmark::DoNotOptimize(net.output().data());
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) state.counters["median_ms"] = ms[ms.size() / 2];
  const double flops = Flops(*blocks, n, hw);
  state.counters["flops"] = flops;
  state.counters["GFLOPS"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// MobileNet-v1's 13 depthwise-separable blocks (after its first conv).
std::vector<Block> MobileNetBody() {
  const int64_t shapes[][3] = {{32, 64, 1},    {64, 128, 2},  {128, 128, 1}, {128, 256, 2},
                               {256, 256, 1},  {256, 512, 2}, {512, 512, 1}, {512, 512, 1},
                               {512, 512, 1},  {512, 512, 1}, {512, 512, 1}, {512, 1024, 2},
                               {1024, 1024, 1}};
  std::mt19937 rng(0);
  std::vector<Block> blocks;
  for (const auto& s : shapes) blocks.push_back(MakeBlock(s[0], s[1], s[2], kRelu, rng));
  return blocks;
}

void RegisterAll() {
  auto add = [](const std::string& name, std::shared_ptr<const std::vector<Block>> blocks,
                int64_t n, int64_t hw) {
    benchmark::RegisterBenchmark(name.c_str(), BM_Xnnpack, blocks, n, hw)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  const int64_t seed_shapes[][4] = {{1, 32, 64, 112},  {1, 128, 128, 56},  {1, 512, 512, 14},
                                    {16, 32, 64, 112}, {16, 128, 128, 56}, {16, 512, 512, 14}};
  for (const auto& s : seed_shapes) {
    std::mt19937 rng(0);
    add("sepconv/" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "-" +
            std::to_string(s[2]) + "x" + std::to_string(s[3]),
        std::make_shared<const std::vector<Block>>(
            std::vector<Block>{MakeBlock(s[1], s[2], 1, kNone, rng)}),
        s[0], s[3]);
  }
  auto mobilenet = std::make_shared<const std::vector<Block>>(MobileNetBody());
  for (int64_t n : {1, 8}) {
    add("mobilenet_body/" + std::to_string(n) + "x32x112", mobilenet, n, 112);
  }
}

// Naive NHWC reference of one block (double accumulators), for --check.
std::vector<float> Reference(const Block& b, const std::vector<float>& x, int64_t n, int64_t h,
                             int64_t w) {
  const int64_t ho = OutSize(h, b.stride), wo = OutSize(w, b.stride), c_in = b.in;
  std::vector<float> mid(static_cast<size_t>(n * ho * wo * c_in));
  std::vector<float> out(static_cast<size_t>(n * ho * wo * b.out));
  auto clamp = [&b](double v) {
    return std::clamp(static_cast<float>(v), b.clamp.min, b.clamp.max);
  };
  for (int64_t p = 0; p < n * ho * wo; ++p) {  // output pixel (i, y, xo)
    const int64_t i = p / (ho * wo), y = p / wo % ho, xo = p % wo;
    for (int64_t c = 0; c < c_in; ++c) {
      double acc = b.dw_bias[c];
      for (int64_t ky = 0; ky < kKernel; ++ky) {
        for (int64_t kx = 0; kx < kKernel; ++kx) {
          const int64_t iy = y * b.stride - 1 + ky, ix = xo * b.stride - 1 + kx;
          if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
          acc += static_cast<double>(x[((i * h + iy) * w + ix) * c_in + c]) *
                 b.dw[(ky * kKernel + kx) * c_in + c];
        }
      }
      mid[p * c_in + c] = clamp(acc);
    }
  }
  for (int64_t p = 0; p < n * ho * wo; ++p) {
    for (int64_t o = 0; o < b.out; ++o) {
      double acc = b.pw_bias[o];
      for (int64_t c = 0; c < c_in; ++c) {
        acc += static_cast<double>(mid[p * c_in + c]) * b.pw[o * c_in + c];
      }
      out[p * b.out + o] = clamp(acc);
    }
  }
  return out;
}

// --check: N=2, 8->16 channels, 9x11: stride 1 without activation, then
// stride 2 with ReLU6 (weights scaled up so that both bounds clamp). Returns
// the process exit code.
int RunChecks() {
  const int64_t n = 2, h = 9, w = 11;
  std::mt19937 rng(7);
  int failures = 0;
  for (const auto& [stride, clamp, name] :
       {std::tuple<int64_t, Clamp, const char*>{1, kNone, "s1"}, {2, kRelu6, "s2_relu6"}}) {
    Block block = MakeBlock(8, 16, stride, clamp, rng);
    const float scale = clamp.max == kRelu6.max ? 1000.0f : 1.0f;
    for (float& v : block.pw) v *= scale;
    Network net;
    const std::string error = net.Init({block}, n, h, w);
    net.FillInput(rng);
    if (!error.empty() || !net.Run()) {
      std::fprintf(stderr, "check %s: XNNPACK failed %s\n", name, error.c_str());
      ++failures;
      continue;
    }
    const std::vector<float> want = Reference(block, net.input(), n, h, w);
    const std::vector<float>& got = net.output();
    double max_err = want.size() == got.size() ? 0.0 : kInf;
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
      max_err = std::max(max_err, std::fabs(static_cast<double>(want[i]) - got[i]));
    }
    const bool ok = max_err < 1e-4;
    std::printf("check %s: max abs error %.3g over %zu outputs (%td at 0, %td at 6) %s\n", name,
                max_err, want.size(), std::count(want.begin(), want.end(), 0.0f),
                std::count(want.begin(), want.end(), 6.0f), ok ? "ok" : "MISMATCH");
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  // Our own flags first; Google Benchmark rejects what it does not know.
  bool check = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      sepconv::g_threads = std::max(1, std::atoi(argv[i] + 10));
    } else if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (xnn_initialize(/*allocator=*/nullptr) != xnn_status_success) {
    std::fprintf(stderr, "xnn_initialize failed\n");
    return 1;
  }
  // One thread: a null threadpool (inline on this thread). More: a pool of N
  // threads, the calling thread being one of them.
  if (sepconv::g_threads > 1) {
    sepconv::g_pool.reset(pthreadpool_create(sepconv::g_threads));
    if (sepconv::g_pool == nullptr) {
      std::fprintf(stderr, "pthreadpool_create(%d) failed\n", sepconv::g_threads);
      return 1;
    }
  }
  if (check) return sepconv::RunChecks();
  sepconv::RegisterAll();
  benchmark::AddCustomContext("threads", std::to_string(sepconv::g_threads));
  benchmark::AddCustomContext("xnnpack_version", sepconv::kXnnpackVersion);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // A filter that matches nothing, or a benchmark that failed, is an error
  // (the smoke test relies on it).
  return ran > 0 && sepconv::g_errors == 0 ? 0 : 1;
}
