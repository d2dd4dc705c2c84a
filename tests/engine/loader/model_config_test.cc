#include "engine/loader/model_config.h"

#include <string>
#include <vector>

#include "engine/random_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace {

using ::testing::HasSubstr;

// A config as Triton users write it for an ONNX model, list syntax included.
constexpr char kTritonConfig[] = R"pb(
  name: "separableconv"
  platform: "onnxruntime_onnx"
  max_batch_size: 8
  version_policy: { latest { num_versions: 2 } } input
  [ {
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 32, -1, -1 ]
  }] output
  [ {
    name: "output"
    data_type: TYPE_FP32
    dims: [ 64, -1, -1 ]
  }]
  dynamic_batching {
    preferred_batch_size: [ 4, 8 ]
    max_queue_delay_microseconds: 100
    preserve_ordering: false
    default_queue_policy { max_queue_size: 16 }
  } instance_group
  [ { count: 2 kind: KIND_CPU }]
  default_model_filename: "model.onnx"
)pb";

TEST(ModelConfigTest, ParsesATritonConfigUnchanged) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(kTritonConfig, "config.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "separableconv");
  EXPECT_EQ(config->max_batch_size(), 8);
  EXPECT_EQ(config->version_policy().latest().num_versions(), 2u);
  ASSERT_EQ(config->input_size(), 1);
  EXPECT_EQ(config->input(0).dims_size(), 3);
  EXPECT_EQ(config->dynamic_batching().preferred_batch_size_size(), 2);
  EXPECT_EQ(config->dynamic_batching().default_queue_policy().max_queue_size(), 16u);
  EXPECT_EQ(config->instance_group(0).count(), 2);
  EXPECT_TRUE(ValidateModelConfig(*config, "separableconv").ok());
}

TEST(ModelConfigTest, UnknownFieldIsAnErrorNamingFieldAndPosition) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(
      "name: \"m\"\nmax_batch_size: 4\n  model_transaction_policy { }\n", "m/config.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("m/config.pbtxt:3:"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("model_transaction_policy"));

  absl::StatusOr<ModelConfig> nested = ParseModelConfig(
      "dynamic_batching { max_queue_delay_microseconds: 5 priority_levels: 2 }", "c.pbtxt");
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(std::string(nested.status().message()), HasSubstr("priority_levels"));

  absl::StatusOr<ModelConfig> syntax = ParseModelConfig("max_batch_size: \"eight\"", "c.pbtxt");
  ASSERT_FALSE(syntax.ok());
  EXPECT_THAT(std::string(syntax.status().message()), HasSubstr("c.pbtxt:1:"));
}

TEST(ModelConfigTest, RefusesBadValuesWithAClearReason) {
  const struct {
    const char* text;
    const char* why;
  } kCases[] = {
      {"name: \"other\"", "differs from the model's folder name 'm'"},
      {"platform: \"tensorflow_savedmodel\"", "platform 'tensorflow_savedmodel'"},
      {"backend: \"pytorch\"", "backend 'pytorch'"},
      {"max_batch_size: -1", "max_batch_size -1"},
      {"input { name: \"input\" data_type: TYPE_FP16 }", "TYPE_FP16"},
      {"input { name: \"input\" format: FORMAT_NHWC }", "FORMAT_NHWC"},
      {"max_batch_size: 4 input { name: \"input\" dims: [ 1, 32, -1, -1 ] }", "[C, H, W]"},
      {"input { name: \"input\" dims: [ 32, -1, -1 ] }", "[N, C, H, W]"},
      {"max_batch_size: 4 input { name: \"input\" dims: [ 32, 0, -1 ] }",
       "-1 (variable) or positive"},
      {"input { name: \"a\" } input { name: \"b\" }", "one input and one output"},
      {"dynamic_batching { }", "needs max_batch_size > 0"},
      {"max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }",
       "preferred_batch_size 8 is outside 1..max_batch_size (4)"},
      {"instance_group { kind: KIND_GPU }", "KIND_GPU"},
      {"version_policy { latest { num_versions: 0 } }", "num_versions"},
      {"version_policy { specific { versions: [ 1, -2 ] } }", "version -2"},
      {"sepconv { }", "sepconv has no layers"},
      {"sepconv { layers { out_channels: 8 } }", "layers[0] needs positive in_channels"},
      {"sepconv { layers { in_channels: 8 out_channels: 8 kernel: 4 } }", "kernel"},
      {"sepconv { layers { in_channels: 8 out_channels: 8 } layers { in_channels: 9 "
       "out_channels: 4 } }",
       "layers[1].in_channels 9 differs from layers[0].out_channels 8"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<ModelConfig> config = ParseModelConfig(c.text, "config.pbtxt");
    ASSERT_TRUE(config.ok()) << config.status();
    absl::Status status = ValidateModelConfig(*config, "m");
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.why));
  }
}

TEST(ModelConfigTest, LayersSectionAppliesDefaultsAndChains) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig(R"pb(
                         sepconv {
                           seed: 7
                           layers { in_channels: 16 out_channels: 32 depthwise_activation: RELU6 }
                           layers {
                             out_channels: 24
                             kernel: 5
                             stride: 2
                             dilation: 2
                             depth_multiplier: 2
                             padding: 0
                             depthwise_bias: false
                             pointwise_activation: RELU
                           }
                         }
                       )pb",
                       "c.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::vector<LayerSpec>> layers = LayerSpecsFromConfig(config->sepconv());
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(layers->size(), 2u);
  const LayerSpec& a = (*layers)[0];
  EXPECT_EQ(a.kernel, 3);
  EXPECT_EQ(a.stride, 1);
  EXPECT_EQ(a.padding, -1);
  EXPECT_EQ(a.depth_multiplier, 1);
  EXPECT_TRUE(a.depthwise_bias && a.pointwise_bias);
  EXPECT_EQ(a.depthwise_activation, Activation::kRelu6);
  const LayerSpec& b = (*layers)[1];
  EXPECT_EQ(b.in_channels, 32);  // chained
  EXPECT_EQ(b.kernel, 5);
  EXPECT_EQ(b.stride, 2);
  EXPECT_EQ(b.dilation, 2);
  EXPECT_EQ(b.depth_multiplier, 2);
  EXPECT_EQ(b.padding, 0);
  EXPECT_FALSE(b.depthwise_bias);
  EXPECT_TRUE(b.pointwise_bias);
  EXPECT_EQ(b.pointwise_activation, Activation::kRelu);
}

TEST(ModelConfigTest, CompletesInputsAndOutputsFromTheModel) {
  LayerSpec layer;
  layer.in_channels = 8;
  layer.out_channels = 4;
  layer.stride = 2;
  absl::StatusOr<ModelSpec> spec = MakeRandomModel({layer}, 1);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ModelConfig batched;
  batched.set_max_batch_size(4);
  ModelIo io;
  io.input_dims = {-1, 8, 32, 32};
  absl::StatusOr<ModelConfig> done = CompleteModelConfig(batched, "m", *spec, io);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->name(), "m");
  EXPECT_EQ(done->input(0).name(), "input");
  EXPECT_EQ(done->input(0).data_type(), TYPE_FP32);
  EXPECT_THAT(done->input(0).dims(), ::testing::ElementsAre(8, 32, 32));
  EXPECT_THAT(done->output(0).dims(), ::testing::ElementsAre(4, 16, 16));

  ModelConfig unbatched;
  io.input_dims = {};
  done = CompleteModelConfig(unbatched, "m", *spec, io);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(done->input(0).dims(), ::testing::ElementsAre(-1, 8, -1, -1));
  EXPECT_THAT(done->output(0).dims(), ::testing::ElementsAre(-1, 4, -1, -1));

  ModelConfig wrong_channels;
  wrong_channels.set_max_batch_size(4);
  auto* in = wrong_channels.add_input();
  in->set_name("input");
  in->add_dims(3);
  in->add_dims(-1);
  in->add_dims(-1);
  absl::Status status = CompleteModelConfig(wrong_channels, "m", *spec, io).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("dim C is 3 in the config but 8"));

  ModelConfig wrong_name;
  wrong_name.add_input()->set_name("x");
  status = CompleteModelConfig(wrong_name, "m", *spec, io).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("input 'x' is named 'input' in the model"));
}

}  // namespace
}  // namespace sepconv
