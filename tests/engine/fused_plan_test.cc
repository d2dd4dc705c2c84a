// The fused NCHW kernels (engine/internal/fused_plan.h) against the naive
// reference, for every ISA build this CPU can run (AVX2 and AVX-512 alike),
// over kernels, strides, dilations, paddings, depth multipliers, biases,
// activations, widths around a vector and tiles from one pixel block to
// whole planes, on 1 to 3 threads; and bit-identical answers whatever the
// batch, the tiling and the thread count.

#include "engine/internal/fused_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/internal/arena.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace internal {
namespace {

// The kernel builds this CPU can run.
std::vector<const FusedKernels*> RunnableKernels() {
  std::vector<const FusedKernels*> kernels;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernels.push_back(&FusedKernelsAvx2());
  }
  if (__builtin_cpu_supports("avx512f")) kernels.push_back(&FusedKernelsAvx512());
  return kernels;
}

std::vector<float> Input(const Dims4& d, uint32_t seed) {
  std::vector<float> values(static_cast<size_t>(Elements(d)));
  uint32_t state = seed * 2654435761u + 7;
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    v = 4.f * (static_cast<float>(state >> 8) / static_cast<float>(1 << 23) - 1.f);
  }
  return values;
}

// Where RunFused writes each sample's output: `offset` floats past a 64-byte
// boundary (the streamed output's alignment cases), guards around it.
struct OutputPlacement {
  bool stream = false;
  int64_t offset = 0;  // 0..15
};

constexpr int64_t kGuardFloats = 32;
constexpr float kGuard = 12345.f;

// Runs the fused plan on `input` (one batch item per sample, so samples sit
// apart in memory as callers' items do) and returns the output. Fails the
// test if a write lands outside a sample's output.
std::vector<float> RunFused(const ModelSpec& model, const Dims4& dims,
                            const std::vector<float>& input, const FusedKernels& kernels,
                            int threads, int64_t tile_bytes, OutputPlacement placement = {}) {
  const std::vector<FusedLayerWeights> weights = PackFusedWeights(model, kernels.mr);
  FusedPlan plan(model, dims, kernels, weights, threads, tile_bytes, placement.stream);
  const Dims4 out = InferOutputShape(model, dims).value();
  const int64_t in_sample = dims.c * dims.h * dims.w, out_sample = out.c * out.h * out.w;
  // Each sample's output at `offset` floats past a 64-byte boundary of its
  // own buffer, kGuardFloats of kGuard before and after.
  const int64_t span = kGuardFloats + placement.offset + out_sample + kGuardFloats;
  std::vector<std::vector<float>> ins;
  std::vector<std::unique_ptr<float[], decltype(&std::free)>> outs;
  std::vector<BatchItem> items;
  for (int64_t i = 0; i < dims.n; ++i) {
    ins.emplace_back(input.begin() + i * in_sample, input.begin() + (i + 1) * in_sample);
    const size_t bytes = static_cast<size_t>((span * 4 + 63) / 64 * 64);
    outs.emplace_back(static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
    std::fill(outs.back().get(), outs.back().get() + span, kGuard);
    float* o = outs.back().get() + kGuardFloats + placement.offset;
    std::fill(o, o + out_sample, NAN);
    items.push_back({ins.back().data(), o, 1});
  }
  Arena arena;
  plan.Execute(items, arena.Reserve(plan.ArenaBytes()));
  std::vector<float> result;
  for (int64_t i = 0; i < dims.n; ++i) {
    const float* whole = outs[static_cast<size_t>(i)].get();
    const float* o = whole + kGuardFloats + placement.offset;
    result.insert(result.end(), o, o + out_sample);
    for (const float* g = whole; g < o; ++g) EXPECT_EQ(*g, kGuard) << "before sample " << i;
    for (const float* g = o + out_sample; g < whole + span; ++g) {
      EXPECT_EQ(*g, kGuard) << "after sample " << i;
    }
  }
  return result;
}

double RelativeError(const std::vector<float>& actual, const std::vector<float>& expected) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::fabs(double{actual[i]} - double{expected[i]}));
    if (std::isnan(actual[i])) diff = INFINITY;
    scale = std::max(scale, std::fabs(double{expected[i]}));
  }
  return diff / scale;
}

struct Geometry {
  int64_t kernel, stride, dilation, padding;
};

class FusedSweepTest : public ::testing::TestWithParam<Geometry> {};

TEST_P(FusedSweepTest, MatchesTheReference) {
  const Geometry g = GetParam();
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kRelu6};
  for (const FusedKernels* kernels : RunnableKernels()) {
    int variant = 0;
    for (int64_t dm : {1, 2, 3}) {
      for (int64_t width : {5, 17, 40}) {
        LayerSpec a, b;
        a.in_channels = 3 + variant % 5;
        a.out_channels = 13 + 7 * (variant % 3);  // not a multiple of a block
        b.in_channels = a.out_channels;
        b.out_channels = 6;
        for (LayerSpec* s : {&a, &b}) {
          s->kernel = g.kernel;
          s->stride = g.stride;
          s->dilation = g.dilation;
          s->padding = g.padding;
          s->depth_multiplier = dm;
          s->depthwise_bias = variant % 2 == 0;
          s->pointwise_bias = variant % 3 != 1;
          s->depthwise_activation = acts[variant % 3];
          s->pointwise_activation = acts[(variant + 1) % 3];
        }
        const ModelSpec model = MakeRandomModel({a, b}, variant).value();
        const Dims4 dims{1 + variant % 3, a.in_channels, 23, width};
        if (!InferOutputShape(model, dims).ok()) continue;  // too small for the reach
        const std::vector<float> input = Input(dims, variant);
        const std::vector<float> expected = ReferenceForward(model, dims, input).value();
        // Tiles of one pixel block up to whole planes, 1 to 3 threads,
        // the output streamed or not.
        for (int64_t tile_bytes : {int64_t{1}, int64_t{64} << 10}) {
          const int threads = 1 + (variant + 1) % 3;  // fewer samples than threads too
          const OutputPlacement placement{tile_bytes > 1, variant % 16};
          SCOPED_TRACE(absl::StrCat(kernels->isa, " K", g.kernel, " s", g.stride, " d", g.dilation,
                                    " p", g.padding, " dm", dm, " W", width, " n", dims.n,
                                    " threads ", threads, " tile ", tile_bytes, " stream ",
                                    placement.stream, " offset ", placement.offset));
          EXPECT_LE(
              RelativeError(RunFused(model, dims, input, *kernels, threads, tile_bytes, placement),
                            expected),
              1e-5);
        }
        ++variant;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, FusedSweepTest,
    // 3x3 at stride and dilation 1 reads its input in place, the padding's
    // columns masked: no padding, the usual one, and more than the reach.
    ::testing::Values(Geometry{3, 1, 1, -1}, Geometry{3, 1, 1, 0}, Geometry{3, 1, 1, 2},
                      Geometry{3, 2, 1, -1}, Geometry{1, 1, 1, -1}, Geometry{1, 2, 1, 0},
                      Geometry{5, 1, 1, -1}, Geometry{5, 2, 2, -1}, Geometry{7, 3, 1, 2},
                      Geometry{3, 1, 2, 0}, Geometry{3, 2, 1, 2}),
    [](const auto& info) {
      const Geometry& g = info.param;
      return absl::StrCat("K", g.kernel, "S", g.stride, "D", g.dilation, "P",
                          g.padding < 0 ? std::string("same") : absl::StrCat(g.padding));
    });

// A sample's answer does not depend on its batch, its place in it, the tiles
// or the threads: every output pixel sums the same terms in the same order.
TEST(FusedPlanTest, BitIdenticalWhateverTheBatchTilesAndThreads) {
  LayerSpec first, second;
  first.in_channels = 24;
  first.out_channels = 40;
  first.depthwise_activation = Activation::kRelu6;
  second.in_channels = 40;
  second.out_channels = 17;
  second.stride = 2;
  const ModelSpec model = MakeRandomModel({first, second}, 5).value();
  const Dims4 batch{5, 24, 31, 29};
  const std::vector<float> input = Input(batch, 11);
  const int64_t in_sample = 24 * 31 * 29;
  for (const FusedKernels* kernels : RunnableKernels()) {
    SCOPED_TRACE(kernels->isa);
    const std::vector<float> reference = RunFused(model, batch, input, *kernels, 1, 0);
    const size_t out_sample = reference.size() / 5;
    for (int threads : {1, 2, 3}) {
      for (int64_t tile_bytes : {int64_t{1}, int64_t{16} << 10, int64_t{1} << 30}) {
        EXPECT_EQ(RunFused(model, batch, input, *kernels, threads, tile_bytes), reference)
            << threads << " threads, tile " << tile_bytes;
      }
    }
    for (int64_t i = 0; i < 5; ++i) {
      const std::vector<float> one(input.begin() + i * in_sample,
                                   input.begin() + (i + 1) * in_sample);
      const std::vector<float> alone = RunFused(model, Dims4{1, 24, 31, 29}, one, *kernels, 2, 0);
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), reference.begin() + i * out_sample))
          << "sample " << i;
    }
  }
}

// A streamed output (non-temporal stores where a vector is aligned to its width,
// usual stores elsewhere) holds the same bits as a cached one, wherever the
// caller's buffer starts and whether or not a plane is a multiple of a
// cache line, and nothing is written outside it.
TEST(FusedPlanTest, StreamedOutputBitIdenticalAtEveryAlignment) {
  LayerSpec first, second;
  first.in_channels = 5;
  first.out_channels = 19;
  second.in_channels = 19;
  second.out_channels = 23;  // not a multiple of a block of output channels
  second.pointwise_activation = Activation::kRelu;
  const ModelSpec model = MakeRandomModel({first, second}, 9).value();
  for (const Dims4& dims : {Dims4{2, 5, 32, 32}, Dims4{3, 5, 23, 29}}) {  // planes 1024, 667
    const std::vector<float> input = Input(dims, 4);
    for (const FusedKernels* kernels : RunnableKernels()) {
      const std::vector<float> cached = RunFused(model, dims, input, *kernels, 1, 0);
      for (int64_t offset = 0; offset < 16; ++offset) {
        for (int threads : {1, 2}) {
          for (int64_t tile_bytes : {int64_t{1}, int64_t{0}}) {
            SCOPED_TRACE(absl::StrCat(kernels->isa, " ", dims.h, "x", dims.w, " offset ", offset,
                                      " threads ", threads, " tile ", tile_bytes));
            EXPECT_EQ(RunFused(model, dims, input, *kernels, threads, tile_bytes,
                               OutputPlacement{true, offset}),
                      cached);
          }
        }
      }
    }
  }
}

// More mid channels than one pass of the pointwise product takes (128): the
// passes add onto the output in order, the activation after the last.
TEST(FusedPlanTest, PointwiseInPassesMatchesTheReference) {
  LayerSpec s;
  s.in_channels = 70;
  s.depth_multiplier = 4;  // 280 mid channels: passes of 128, 128, 24
  s.out_channels = 29;
  s.pointwise_activation = Activation::kRelu6;
  const ModelSpec model = MakeRandomModel({s}, 2).value();
  const Dims4 dims{2, 70, 9, 21};
  const std::vector<float> input = Input(dims, 3);
  const std::vector<float> expected = ReferenceForward(model, dims, input).value();
  for (const FusedKernels* kernels : RunnableKernels()) {
    SCOPED_TRACE(kernels->isa);
    EXPECT_LE(RelativeError(RunFused(model, dims, input, *kernels, 2, 0), expected), 1e-5);
  }
}

TEST(FusedPlanTest, NamesItsKernelsAndTiles) {
  LayerSpec s;
  s.in_channels = 8;
  s.out_channels = 8;
  const ModelSpec model = MakeRandomModel({s}, 1).value();
  for (const FusedKernels* kernels : RunnableKernels()) {
    const std::vector<FusedLayerWeights> weights = PackFusedWeights(model, kernels->mr);
    FusedPlan plan(model, Dims4{1, 8, 16, 16}, *kernels, weights, 2, 0);
    ASSERT_EQ(plan.ImplNames().size(), 1u);
    EXPECT_EQ(plan.ImplNames()[0].rfind(absl::StrCat("fused_nchw:", kernels->isa), 0), 0u)
        << plan.ImplNames()[0];
  }
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
