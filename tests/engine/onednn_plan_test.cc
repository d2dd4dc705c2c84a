// The oneDNN plan picks a JIT kernel for every primitive: oneDNN silently
// falls back to its reference kernels ("ref:any", 100-1000x slower) for
// configurations its JIT kernels do not cover (e.g. a depthwise conv with
// depth multiplier > 1), so a regression there would not show in any
// correctness test.

#include "engine/internal/onednn_plan.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/flops.h"
#include "engine/internal/onednn_weights.h"
#include "engine/random_model.h"
#include "gtest/gtest.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace {

constexpr ActivationLayout kLayouts[] = {ActivationLayout::kAuto, ActivationLayout::kNhwc,
                                         ActivationLayout::kBlocked8, ActivationLayout::kBlocked16,
                                         ActivationLayout::kNhwcDirect};

// Builds and runs the plan of `model` on `input` under `layout`; returns the
// implementation of every primitive that ran.
std::vector<std::string> ImplNamesOf(const ModelSpec& model, const Dims4& input,
                                     ActivationLayout layout) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  WeightCache weights(model, engine);
  Plan plan(model, input, CountFlops(model, input).value(), layout, weights, engine, stream);
  const Dims4 out = InferOutputShape(model, input).value();
  std::vector<float> in(static_cast<size_t>(input.n * input.c * input.h * input.w), 0.5f);
  std::vector<float> result(static_cast<size_t>(out.n * out.c * out.h * out.w));
  const BatchItem item{in.data(), result.data(), input.n};
  internal::Arena arena;
  plan.Execute(absl::MakeConstSpan(&item, 1), stream, arena);
  return plan.ImplNames();
}

// Per kernel size: strides 1/2, dilations 1/2, depth multipliers 1/2/3, every
// layout, channel counts that are not multiples of 8 or 16, two layers (an
// inner one and the last one, which kNhwcDirect treats differently).
class NoReferenceKernelTest : public ::testing::TestWithParam<int> {};

TEST_P(NoReferenceKernelTest, EveryPrimitiveIsJit) {
  const int64_t kernel = GetParam();
  for (int64_t stride : {1, 2}) {
    for (int64_t dilation : {1, 2}) {
      for (int64_t dm : {1, 2, 3}) {
        LayerSpec first, last;
        first.in_channels = 19;
        first.out_channels = 21;
        last.in_channels = 21;
        last.out_channels = 10;
        for (LayerSpec* s : {&first, &last}) {
          s->kernel = kernel;
          s->stride = stride;
          s->dilation = dilation;
          s->depth_multiplier = dm;
          s->depthwise_activation = Activation::kRelu6;
          s->pointwise_activation = Activation::kRelu;
        }
        last.depthwise_bias = false;
        const ModelSpec model = MakeRandomModel({first, last}, 1).value();
        for (ActivationLayout layout : kLayouts) {
          const std::string where = absl::StrCat("K", kernel, " s", stride, " d", dilation, " dm",
                                                 dm, " layout ", static_cast<int>(layout));
          const std::vector<std::string> names = ImplNamesOf(model, Dims4{2, 19, 29, 27}, layout);
          // Input reorder, 2 layers of dm depthwise + dm pointwise convs (the
          // last pointwise may be one direct-output matmul), output.
          EXPECT_GE(names.size(), static_cast<size_t>(4 * dm + 1)) << where;
          for (const std::string& name : names) {
            EXPECT_FALSE(name.empty()) << where;
            EXPECT_FALSE(absl::StartsWith(name, "ref")) << where << ": " << name;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OneDnnPlan, NoReferenceKernelTest, ::testing::Values(1, 3, 5, 7),
                         [](const auto& info) { return absl::StrCat("K", info.param); });

}  // namespace
}  // namespace sepconv
