#include "engine/model_spec.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace sepconv {
namespace {

using ::testing::HasSubstr;
using testing::Spec;

// A valid model of `specs` with zero weights of the right sizes.
ModelSpec ZeroModel(const std::vector<LayerSpec>& specs) {
  ModelSpec model;
  for (const LayerSpec& s : specs) {
    Layer layer{s, {}};
    layer.weights.depthwise.resize(s.MidChannels() * s.kernel * s.kernel);
    if (s.depthwise_bias) layer.weights.depthwise_bias.resize(s.MidChannels());
    layer.weights.pointwise.resize(s.out_channels * s.MidChannels());
    if (s.pointwise_bias) layer.weights.pointwise_bias.resize(s.out_channels);
    model.layers.push_back(layer);
  }
  return model;
}

void ExpectInvalid(const absl::Status& status, const std::string& fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
}

TEST(ActivationTest, NamesRoundTrip) {
  for (Activation a : {Activation::kNone, Activation::kRelu, Activation::kRelu6}) {
    absl::StatusOr<Activation> parsed = ParseActivation(ActivationName(a));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, a);
  }
  ExpectInvalid(ParseActivation("gelu").status(), "gelu");
}

TEST(ValidateModelTest, AcceptsTheSeedModule) {
  EXPECT_TRUE(ValidateModel(ZeroModel({Spec(32, 64)})).ok());
}

TEST(ValidateModelTest, RejectsAnEmptyModel) { ExpectInvalid(ValidateModel({}), "no layers"); }

struct BadSpec {
  const char* name;
  void (*mutate)(LayerSpec&);
  const char* fragment;
};

TEST(ValidateModelTest, RejectsEachBadHyperParameterNamingLayerAndValue) {
  const BadSpec cases[] = {
      {"in_channels", [](LayerSpec& s) { s.in_channels = 0; },
       "in_channels must be positive, got 0"},
      {"negative in", [](LayerSpec& s) { s.in_channels = -3; }, "got -3"},
      {"out_channels", [](LayerSpec& s) { s.out_channels = -1; },
       "out_channels must be positive, got -1"},
      {"even kernel", [](LayerSpec& s) { s.kernel = 4; }, "kernel must be odd and in 1..7, got 4"},
      {"big kernel", [](LayerSpec& s) { s.kernel = 9; }, "got 9"},
      {"zero kernel", [](LayerSpec& s) { s.kernel = 0; }, "got 0"},
      {"stride", [](LayerSpec& s) { s.stride = 0; }, "stride must be positive, got 0"},
      {"dilation", [](LayerSpec& s) { s.dilation = -2; }, "dilation must be positive, got -2"},
      {"dm", [](LayerSpec& s) { s.depth_multiplier = 0; },
       "depth_multiplier must be positive, got 0"},
      {"padding", [](LayerSpec& s) { s.padding = -2; }, "got -2"},
      {"padding reach", [](LayerSpec& s) { s.padding = 3; },
       "in 0..2 (dilation * (kernel - 1)), got 3"},
      {"weight overflow",
       [](LayerSpec& s) {
         s.in_channels = int64_t{1} << 40;
         s.depth_multiplier = int64_t{1} << 30;
       },
       "overflows int64"},
  };
  for (const BadSpec& c : cases) {
    SCOPED_TRACE(c.name);
    LayerSpec bad = Spec(8, 8);
    c.mutate(bad);
    // Layer 1 is the bad one; hyper-parameters are checked before the
    // channel chain and the weights.
    ModelSpec model = ZeroModel({Spec(8, 8), Spec(8, 8)});
    model.layers[1].spec = bad;
    const absl::Status status = ValidateModel(model);
    ExpectInvalid(status, "layer 1: ");
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.fragment));
  }
}

TEST(ValidateModelTest, RejectsABrokenChannelChain) {
  ModelSpec model = ZeroModel({Spec(32, 64), Spec(48, 16)});
  ExpectInvalid(ValidateModel(model),
                "layer 1: in_channels 48 does not match layer 0's out_channels 64");
}

TEST(ValidateModelTest, RejectsWrongWeightSizes) {
  struct Case {
    void (*mutate)(LayerWeights&);
    const char* fragment;
  };
  const Case cases[] = {
      {[](LayerWeights& w) { w.depthwise.pop_back(); },
       "depthwise weight has 71 values, expected 72"},
      {[](LayerWeights& w) { w.depthwise_bias.clear(); },
       "depthwise bias has 0 values, expected 8"},
      {[](LayerWeights& w) { w.pointwise.push_back(1); },
       "pointwise weight has 97 values, expected 96"},
      {[](LayerWeights& w) { w.pointwise_bias.resize(3); },
       "pointwise bias has 3 values, expected 12"},
  };
  for (const Case& c : cases) {
    ModelSpec model = ZeroModel({Spec(8, 12)});
    c.mutate(model.layers[0].weights);
    ExpectInvalid(ValidateModel(model), std::string("layer 0: ") + c.fragment);
  }
  // A bias given for a layer declared without one is an error too.
  LayerSpec no_bias = Spec(8, 12);
  no_bias.pointwise_bias = false;
  ModelSpec model = ZeroModel({no_bias});
  model.layers[0].weights.pointwise_bias.resize(12);
  ExpectInvalid(ValidateModel(model), "pointwise bias has 12 values, expected 0");
}

TEST(InferOutputShapeTest, FollowsTheConvolutionArithmetic) {
  LayerSpec strided = Spec(3, 8);
  strided.stride = 2;
  LayerSpec dilated = Spec(8, 5);
  dilated.kernel = 5;
  dilated.dilation = 2;
  dilated.padding = 0;  // reach 9
  LayerSpec wide = Spec(5, 4);
  wide.kernel = 7;
  wide.depth_multiplier = 3;
  const ModelSpec model = ZeroModel({strided, dilated, wide});
  absl::StatusOr<Dims4> out = InferOutputShape(model, Dims4{2, 3, 31, 24});
  ASSERT_TRUE(out.ok()) << out.status();
  // 31 -> (31 + 2 - 3) / 2 + 1 = 16 -> 16 - 9 + 1 = 8 -> 8 ("same").
  // 24 -> (24 + 2 - 3) / 2 + 1 = 12 -> 12 - 9 + 1 = 4 -> 4.
  EXPECT_EQ(*out, (Dims4{2, 4, 8, 4}));
}

TEST(InferOutputShapeTest, RejectsBadInputsNamingTheValue) {
  const ModelSpec model = ZeroModel({Spec(4, 8)});
  ExpectInvalid(InferOutputShape(model, Dims4{0, 4, 8, 8}).status(),
                "input dim n must be positive, got 0");
  ExpectInvalid(InferOutputShape(model, Dims4{1, 4, -5, 8}).status(),
                "input dim h must be positive, got -5");
  ExpectInvalid(InferOutputShape(model, Dims4{1, 4, 8, 0}).status(),
                "input dim w must be positive, got 0");
  ExpectInvalid(InferOutputShape(model, Dims4{1, 3, 8, 8}).status(),
                "input has 3 channels, the model expects 4");
  ExpectInvalid(InferOutputShape(ModelSpec{}, Dims4{1, 3, 8, 8}).status(), "no layers");
}

TEST(InferOutputShapeTest, RejectsSpatialSizesBelowTheKernelReach) {
  LayerSpec s = Spec(4, 8);
  s.kernel = 5;
  s.padding = 0;
  const ModelSpec model = ZeroModel({s});
  EXPECT_TRUE(InferOutputShape(model, Dims4{1, 4, 5, 5}).ok());
  ExpectInvalid(InferOutputShape(model, Dims4{1, 4, 4, 9}).status(),
                "layer 0: input height 4 (+ 2 * padding 0) is smaller than the kernel reach 5");
  ExpectInvalid(InferOutputShape(model, Dims4{1, 4, 9, 3}).status(), "input width 3");
  // Stride shrinks later layers below their reach.
  LayerSpec strided = Spec(4, 4);
  strided.stride = 4;
  LayerSpec tail = Spec(4, 4);
  tail.kernel = 7;
  tail.padding = 1;
  ExpectInvalid(InferOutputShape(ZeroModel({strided, tail}), Dims4{1, 4, 16, 16}).status(),
                "layer 1: input height 4 (+ 2 * padding 1) is smaller than the kernel reach 7");
}

TEST(InferOutputShapeTest, RejectsElementCountsThatOverflow) {
  const ModelSpec model = ZeroModel({Spec(4, 8)});
  const int64_t big = int64_t{1} << 31;
  ExpectInvalid(InferOutputShape(model, Dims4{big, 4, big, 8}).status(),
                "input of shape [2147483648, 4, 2147483648, 8] overflows");
  ExpectInvalid(
      InferOutputShape(model, Dims4{1, 4, std::numeric_limits<int64_t>::max(), 1}).status(),
      "overflows");
  // The input fits; the 8x wider output of layer 0 does not.
  LayerSpec widen = Spec(1, 16384);
  ExpectInvalid(
      InferOutputShape(ZeroModel({widen}), Dims4{int64_t{1} << 25, 1, 1 << 12, 1 << 12}).status(),
      "layer 0: output of shape [33554432, 16384, 4096, 4096] overflows");
}

}  // namespace
}  // namespace sepconv
