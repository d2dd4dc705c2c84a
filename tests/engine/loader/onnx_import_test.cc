#include "engine/loader/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/loader/onnx_test_graph.h"

namespace sepconv {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_onnx::ConvAttrs;
using testing_onnx::TestGraph;

std::vector<float> RandomInput(const Dims4& d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(d.n * d.c * d.h * d.w);
  for (float& v : x) v = dist(rng);
  return x;
}

// Imports `graph` and checks that the engine's reference on the imported
// model matches the naive evaluation of the ONNX graph itself.
void ExpectSameAsGraph(TestGraph& graph, const Dims4& dims) {
  absl::StatusOr<ImportedModel> imported = ImportOnnx(graph.Serialize());
  ASSERT_TRUE(imported.ok()) << imported.status();
  const std::vector<float> x = RandomInput(dims, 7);
  Dims4 want_dims;
  const std::vector<float> want = graph.Evaluate(dims, x, &want_dims);
  absl::StatusOr<Dims4> got_dims = InferOutputShape(imported->spec, dims);
  ASSERT_TRUE(got_dims.ok()) << got_dims.status();
  ASSERT_EQ(*got_dims, want_dims);
  absl::StatusOr<std::vector<float>> got = ReferenceForward(imported->spec, dims, x);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want.size());
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(double{want[i]}));
    max_err = std::max(max_err, std::abs(double{(*got)[i]} - want[i]));
  }
  ASSERT_GT(max_ref, 0.0);
  EXPECT_LE(max_err / max_ref, 1e-5) << "max abs error " << max_err;
}

TEST(OnnxImportTest, SeedModuleMapsToOneLayer) {
  TestGraph g(8);
  g.Conv(8, ConvAttrs().Kernel(3).Group(8));
  g.Conv(16, ConvAttrs().Kernel(1));
  g.Finish();
  absl::StatusOr<ImportedModel> imported = ImportOnnx(g.Serialize());
  ASSERT_TRUE(imported.ok()) << imported.status();
  ASSERT_EQ(imported->spec.layers.size(), 1u);
  const LayerSpec& s = imported->spec.layers[0].spec;
  EXPECT_EQ(s.in_channels, 8);
  EXPECT_EQ(s.out_channels, 16);
  EXPECT_EQ(s.kernel, 3);
  EXPECT_EQ(s.EffectivePadding(), 1);
  EXPECT_TRUE(s.depthwise_bias);
  EXPECT_TRUE(s.pointwise_bias);
  EXPECT_EQ(imported->input_name, "input");
  EXPECT_EQ(imported->input_dims, (std::vector<int64_t>{-1, 8, -1, -1}));
  EXPECT_EQ(imported->opset, 13);
  ExpectSameAsGraph(g, {2, 8, 9, 7});
}

TEST(OnnxImportTest, FoldsBatchNormAndMapsActivations) {
  for (int opset : {9, 11, 13, 17}) {
    SCOPED_TRACE(opset);
    TestGraph g(6, opset, opset);
    g.Conv(12, ConvAttrs().Kernel(5).Group(6).Stride(2).Bias(false));  // dm = 2
    g.BatchNorm(1e-3f);
    if (opset < 11) {
      g.ClipAttrs(0, 6);
    } else {
      g.ClipInputs(0, 6, /*constant_nodes=*/opset == 13);
    }
    g.Conv(10, ConvAttrs().Kernel(1).Bias(false));
    g.BatchNorm();
    g.Node("Relu", {g.current()});
    g.Conv(10, ConvAttrs().Kernel(3).Group(10).Dilation(2));
    g.Node("Identity", {g.current()});
    g.Conv(7, ConvAttrs().Kernel(1));
    g.Finish();
    absl::StatusOr<ImportedModel> imported = ImportOnnx(g.Serialize());
    ASSERT_TRUE(imported.ok()) << imported.status();
    ASSERT_EQ(imported->spec.layers.size(), 2u);
    const LayerSpec& a = imported->spec.layers[0].spec;
    EXPECT_EQ(a.depth_multiplier, 2);
    EXPECT_EQ(a.stride, 2);
    EXPECT_TRUE(a.depthwise_bias);  // from the folded BatchNorm
    EXPECT_EQ(a.depthwise_activation, Activation::kRelu6);
    EXPECT_EQ(a.pointwise_activation, Activation::kRelu);
    EXPECT_EQ(imported->spec.layers[1].spec.dilation, 2);
    ExpectSameAsGraph(g, {3, 6, 13, 11});
  }
}

TEST(OnnxImportTest, ClipWithoutMaxIsRelu) {
  TestGraph g(4, 9);
  g.Conv(4, ConvAttrs().Group(4));
  g.ClipAttrs(0, std::numeric_limits<float>::max());
  g.Conv(4, ConvAttrs().Kernel(1));
  g.Finish();
  absl::StatusOr<ImportedModel> imported = ImportOnnx(g.Serialize());
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->spec.layers[0].spec.depthwise_activation, Activation::kRelu);
}

struct Refusal {
  const char* name;
  void (*build)(TestGraph& g);
  std::vector<std::string> message_parts;
};

void DwPw(TestGraph& g, int64_t c) {
  g.Conv(c, ConvAttrs().Group(c));
  g.Conv(c, ConvAttrs().Kernel(1));
}

const Refusal kRefusals[] = {
    {"Add",
     [](TestGraph& g) {
       DwPw(g, 8);
       g.Node("Add", {g.current(), g.Init("addend", {1}, {1.0f})});
     },
     {"Add_3", "(op Add)", "unsupported operator"}},
    {"MaxPool",
     [](TestGraph& g) {
       g.Node("MaxPool", {g.current()});
       DwPw(g, 8);
     },
     {"MaxPool_1", "(op MaxPool)", "unsupported operator"}},
    {"GroupedConv",
     [](TestGraph& g) { g.Conv(8, ConvAttrs().Group(4)); },
     {"Conv_1", "(op Conv)", "group=4 is neither the channel count 8"}},
    {"PointwiseWithGroupC",
     [](TestGraph& g) {
       g.Conv(8, ConvAttrs().Group(8));
       g.Conv(8, ConvAttrs().Kernel(1).Group(8));
     },
     {"Conv_2", "group=8 after depthwise Conv 'Conv_1'", "group=1"}},
    {"StandardConv",
     [](TestGraph& g) { g.Conv(8, ConvAttrs().Kernel(3).Group(1)); },
     {"Conv_1", "standard 3x3 convolution"}},
    {"AsymmetricPads",
     [](TestGraph& g) {
       g.Conv(8, ConvAttrs().Group(8).Pads({0, 0, 1, 1}));
     },
     {"Conv_1", "asymmetric pads"}},
    {"ClipNotRelu6",
     [](TestGraph& g) {
       g.Conv(8, ConvAttrs().Group(8));
       g.ClipInputs(-1, 6, false);
     },
     {"Clip_2", "neither ReLU"}},
    {"BatchNormAfterRelu",
     [](TestGraph& g) {
       g.Conv(8, ConvAttrs().Group(8));
       g.Node("Relu", {g.current()});
       g.BatchNorm();
     },
     {"BatchNormalization_3", "must directly follow a Conv"}},
    {"EndsAfterDepthwise",
     [](TestGraph& g) { g.Conv(8, ConvAttrs().Group(8)); },
     {"Conv_1", "ends after this depthwise Conv"}},
    {"Branch",
     [](TestGraph& g) {
       g.Conv(8, ConvAttrs().Group(8));
       const std::string x = g.current();
       g.Node("Relu", {x});
       g.Node("Relu", {x});
     },
     {"branching graphs are not supported"}},
};

TEST(OnnxImportTest, RefusesUnsupportedGraphsNamingTheNode) {
  for (const Refusal& r : kRefusals) {
    SCOPED_TRACE(r.name);
    TestGraph g(8);
    r.build(g);
    g.Finish();
    absl::StatusOr<ImportedModel> imported = ImportOnnx(g.Serialize());
    ASSERT_FALSE(imported.ok());
    EXPECT_EQ(imported.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& part : r.message_parts) {
      EXPECT_THAT(std::string(imported.status().message()), HasSubstr(part));
    }
  }
}

TEST(OnnxImportTest, RefusesMalformedTruncatedAndEmptyBytes) {
  absl::StatusOr<ImportedModel> garbage = ImportOnnx("this is not an ONNX file\n");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbage.status().message()), HasSubstr("ONNX model"));

  TestGraph g(8);
  DwPw(g, 8);
  g.Finish();
  const std::string bytes = g.Serialize();
  for (size_t keep : {bytes.size() / 2, bytes.size() - 7, size_t{3}}) {
    SCOPED_TRACE(keep);
    absl::StatusOr<ImportedModel> truncated = ImportOnnx(bytes.substr(0, keep));
    ASSERT_FALSE(truncated.ok());
    EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(truncated.status().message()), HasSubstr("truncated"));
  }
  absl::StatusOr<ImportedModel> empty = ImportOnnx("");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("empty"));
}

TEST(OnnxImportTest, RefusesUnsupportedOpsetsTypesAndExternalData) {
  {
    TestGraph g(8, 19);
    DwPw(g, 8);
    g.Finish();
    EXPECT_THAT(std::string(ImportOnnx(g.Serialize()).status().message()),
                HasSubstr("opset 19 is not supported"));
  }
  {
    TestGraph g(8);
    DwPw(g, 8);
    g.Finish();
    g.model()
        .mutable_graph()
        ->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->set_elem_type(onnx::TensorProto_DataType_FLOAT16);
    EXPECT_THAT(std::string(ImportOnnx(g.Serialize()).status().message()),
                HasSubstr("must be a FLOAT tensor"));
  }
  {
    TestGraph g(8);
    DwPw(g, 8);
    g.Finish();
    g.model().mutable_graph()->mutable_initializer(0)->set_data_location(
        onnx::TensorProto_DataLocation_EXTERNAL);
    EXPECT_THAT(std::string(ImportOnnx(g.Serialize()).status().message()),
                AllOf(HasSubstr("Conv_1"), HasSubstr("external data")));
  }
  {
    TestGraph g(8);
    DwPw(g, 8);
    g.Finish();
    g.model().mutable_graph()->mutable_initializer(0)->mutable_float_data()->RemoveLast();
    EXPECT_THAT(std::string(ImportOnnx(g.Serialize()).status().message()),
                AllOf(HasSubstr("Conv_1"), HasSubstr("its shape needs")));
  }
}

TEST(OnnxImportTest, FileErrorsNameThePath) {
  absl::StatusOr<ImportedModel> missing = ImportOnnxFile("/nonexistent/dir/model.onnx");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/dir/model.onnx"));
}

}  // namespace
}  // namespace sepconv
