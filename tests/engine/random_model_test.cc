#include "engine/random_model.h"

#include <cmath>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

std::vector<LayerSpec> Specs() {
  LayerSpec a;
  a.in_channels = 6;
  a.out_channels = 10;
  a.kernel = 5;
  a.depth_multiplier = 2;
  LayerSpec b;
  b.in_channels = 10;
  b.out_channels = 3;
  b.depthwise_bias = false;
  return {a, b};
}

TEST(MakeRandomModelTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  const ModelSpec a = MakeRandomModel(Specs(), 42).value();
  const ModelSpec b = MakeRandomModel(Specs(), 42).value();
  const ModelSpec c = MakeRandomModel(Specs(), 43).value();
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].weights.depthwise, b.layers[i].weights.depthwise);
    EXPECT_EQ(a.layers[i].weights.pointwise, b.layers[i].weights.pointwise);
    EXPECT_EQ(a.layers[i].weights.pointwise_bias, b.layers[i].weights.pointwise_bias);
    EXPECT_NE(a.layers[i].weights.pointwise, c.layers[i].weights.pointwise);
  }
  EXPECT_TRUE(a.layers[1].weights.depthwise_bias.empty());
  EXPECT_TRUE(ValidateModel(a).ok());
}

TEST(MakeRandomModelTest, WeightsLieWithinPyTorchsDefaultBounds) {
  const ModelSpec model = MakeRandomModel(Specs(), 7).value();
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const double dw = 1.0 / s.kernel, pw = 1.0 / std::sqrt(static_cast<double>(s.MidChannels()));
    double dw_max = 0, pw_max = 0;
    for (float v : layer.weights.depthwise) dw_max = std::max(dw_max, std::fabs(double{v}));
    for (float v : layer.weights.depthwise_bias) dw_max = std::max(dw_max, std::fabs(double{v}));
    for (float v : layer.weights.pointwise) pw_max = std::max(pw_max, std::fabs(double{v}));
    for (float v : layer.weights.pointwise_bias) pw_max = std::max(pw_max, std::fabs(double{v}));
    EXPECT_LE(dw_max, dw);
    EXPECT_GT(dw_max, 0.5 * dw);  // actually spread over the range
    EXPECT_LE(pw_max, pw);
    EXPECT_GT(pw_max, 0.5 * pw);
  }
}

TEST(MakeRandomModelTest, RejectsInvalidSpecs) {
  std::vector<LayerSpec> specs = Specs();
  specs[1].in_channels = 11;
  EXPECT_EQ(MakeRandomModel(specs, 0).status().code(), absl::StatusCode::kInvalidArgument);
  specs = Specs();
  specs[0].kernel = 2;
  EXPECT_EQ(MakeRandomModel(specs, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeRandomModel({}, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MakeRandomModelTest, RefusesAbsurdSizesInsteadOfAllocating) {
  LayerSpec huge;
  huge.in_channels = 1 << 20;
  huge.out_channels = 1 << 20;  // 2^40 pointwise weights
  EXPECT_EQ(MakeRandomModel({huge}, 0).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(DefaultModelTest, IsTheSeedModuleWithPinnedWeights) {
  const ModelSpec model = DefaultModel();
  ASSERT_EQ(model.layers.size(), 1u);
  const Layer& layer = model.layers[0];
  EXPECT_EQ(layer.spec.in_channels, 32);
  EXPECT_EQ(layer.spec.out_channels, 64);
  EXPECT_EQ(layer.spec.kernel, 3);
  EXPECT_EQ(layer.spec.stride, 1);
  EXPECT_EQ(layer.spec.EffectivePadding(), 1);
  EXPECT_TRUE(layer.spec.depthwise_bias && layer.spec.pointwise_bias);
  EXPECT_TRUE(ValidateModel(model).ok());
  // Regression guard: SplitMix64(seed 0) outputs 0xe220a8397b1dcdaf,
  // 0x6e789e6aa1b965f4, ... mapped to ((x >> 11) * 2^-53 * 2 - 1) * bound,
  // computed independently of this code.
  EXPECT_FLOAT_EQ(layer.weights.depthwise[0], 0.25554054975509644f);
  EXPECT_FLOAT_EQ(layer.weights.depthwise[1], -0.0456480011343956f);
  EXPECT_FLOAT_EQ(layer.weights.depthwise[2], -0.31571081280708313f);
  EXPECT_FLOAT_EQ(layer.weights.depthwise_bias[0], -0.022915469482541084f);
  EXPECT_FLOAT_EQ(layer.weights.pointwise[0], -0.09280546754598618f);
  EXPECT_FLOAT_EQ(layer.weights.pointwise_bias[63], -0.15507863461971283f);
}

}  // namespace
}  // namespace sepconv
