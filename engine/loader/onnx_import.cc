#include "engine/loader/onnx_import.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/loader/internal/onnx_graph.h"
#include "engine/loader/internal/status_macros.h"
#include "onnx/onnx_pb.h"

namespace sepconv {
namespace {

using loader_internal::ConstantInput;
using loader_internal::FloatTensor;
using loader_internal::GraphIndex;
using loader_internal::HasInput;
using loader_internal::NodeError;

constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 18;
constexpr int64_t kMaxFileBytes = int64_t{1} << 31;

// The Conv attributes that matter here, defaults applied and checked.
struct ConvParams {
  std::vector<float> weight;  // [M, C / group, k, k]
  std::vector<float> bias;    // empty or [M]
  int64_t out_channels = 0;
  int64_t in_per_group = 0;
  int64_t kernel = 0;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t group = 1;
};

// Which part of the pending layer the last Conv filled, and what followed it.
enum class Stage { kStart, kDepthwise, kPointwise };
enum class Tail { kConv, kBatchNorm, kActivation };

absl::StatusOr<int64_t> SameOrError(const onnx::NodeProto& node, const std::vector<int64_t>& v,
                                    absl::string_view what) {
  if (v.size() != 2) {
    return NodeError(node, absl::StrCat(what, " must have 2 values (2-D conv), got ", v.size()));
  }
  if (v[0] != v[1]) {
    return NodeError(node, absl::StrCat("different ", what, " for H and W (", v[0], ", ", v[1],
                                        ") are not supported"));
  }
  return v[0];
}

// Whether the Conv's auto_pad is VALID (no padding); NOTSET or none is
// false, any other value an error.
absl::StatusOr<bool> AutoPadIsValid(const onnx::NodeProto& node) {
  ASSIGN_OR_RETURN(std::optional<std::string> auto_pad,
                   loader_internal::StringAttr(node, "auto_pad"));
  if (!auto_pad.has_value() || *auto_pad == "NOTSET") return false;
  if (*auto_pad != "VALID") {
    return NodeError(
        node, absl::StrCat("auto_pad=", *auto_pad, " is not supported; export with explicit pads"));
  }
  return true;
}

// The padding the Conv's pads give on every side: 0 without pads or with
// `valid_pad` (auto_pad=VALID, which overrides them); pads must be the same
// on all four sides.
absl::StatusOr<int64_t> ReadPads(const onnx::NodeProto& node, bool valid_pad) {
  ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> pads,
                   loader_internal::IntsAttr(node, "pads"));
  if (!pads.has_value() || valid_pad) return 0;
  const std::vector<int64_t>& v = *pads;
  if (v.size() != 4) {
    return NodeError(node, absl::StrCat("pads must have 4 values, got ", v.size()));
  }
  if (v[0] != v[2] || v[1] != v[3]) {
    return NodeError(node, absl::StrCat("asymmetric pads [", absl::StrJoin(v, ","),
                                        "] are not supported (begin must equal end)"));
  }
  return SameOrError(node, {v[0], v[1]}, "pads");
}

absl::StatusOr<ConvParams> ReadConv(const GraphIndex& index, const onnx::NodeProto& node) {
  ConvParams p;
  ASSIGN_OR_RETURN(FloatTensor w, ConstantInput(index, node, 1, "weight"));
  if (w.dims.size() != 4) {
    return NodeError(node, absl::StrCat("weight must be 4-D (2-D conv), got rank ", w.dims.size()));
  }
  p.out_channels = w.dims[0];
  p.in_per_group = w.dims[1];
  ASSIGN_OR_RETURN(p.kernel, SameOrError(node, {w.dims[2], w.dims[3]}, "kernel sizes"));
  p.weight = std::move(w.values);
  if (HasInput(node, 2)) {
    ASSIGN_OR_RETURN(FloatTensor b, ConstantInput(index, node, 2, "bias"));
    if (static_cast<int64_t>(b.values.size()) != p.out_channels) {
      return NodeError(node, absl::StrCat("bias has ", b.values.size(), " values for ",
                                          p.out_channels, " output channels"));
    }
    p.bias = std::move(b.values);
  }
  ASSIGN_OR_RETURN(const bool valid_pad, AutoPadIsValid(node));
  ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> kernel_shape,
                   loader_internal::IntsAttr(node, "kernel_shape"));
  if (kernel_shape.has_value() && *kernel_shape != std::vector<int64_t>{p.kernel, p.kernel}) {
    return NodeError(node, absl::StrCat("kernel_shape [", absl::StrJoin(*kernel_shape, ","),
                                        "] disagrees with the weight's ", p.kernel, "x", p.kernel));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> group, loader_internal::IntAttr(node, "group"));
  p.group = group.value_or(1);
  ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> strides,
                   loader_internal::IntsAttr(node, "strides"));
  ASSIGN_OR_RETURN(p.stride,
                   SameOrError(node, strides.value_or(std::vector<int64_t>{1, 1}), "strides"));
  ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> dilations,
                   loader_internal::IntsAttr(node, "dilations"));
  ASSIGN_OR_RETURN(p.dilation,
                   SameOrError(node, dilations.value_or(std::vector<int64_t>{1, 1}), "dilations"));
  ASSIGN_OR_RETURN(p.padding, ReadPads(node, valid_pad));
  if (p.stride < 1 || p.dilation < 1 || p.padding < 0 || p.group < 1 || p.kernel < 1) {
    return NodeError(node, "strides, dilations and group must be positive and pads non-negative");
  }
  return p;
}

// Folds y = gamma * (x - mean) / sqrt(var + eps) + beta into the conv's
// weight and bias, per output channel.
absl::Status FoldBatchNorm(const GraphIndex& index, const onnx::NodeProto& node,
                           std::vector<float>& weight, std::vector<float>& bias, int64_t channels) {
  ASSIGN_OR_RETURN(std::optional<int64_t> training,
                   loader_internal::IntAttr(node, "training_mode"));
  if (training.value_or(0) != 0) return NodeError(node, "training_mode=1 is not supported");
  ASSIGN_OR_RETURN(std::optional<int64_t> spatial, loader_internal::IntAttr(node, "spatial"));
  if (spatial.value_or(1) != 1) return NodeError(node, "spatial=0 is not supported");
  ASSIGN_OR_RETURN(std::optional<float> epsilon, loader_internal::FloatAttr(node, "epsilon"));
  const double eps = epsilon.value_or(1e-5f);
  const char* kRoles[] = {"scale", "B", "mean", "var"};
  std::vector<float> params[4];
  for (int i = 0; i < 4; ++i) {
    ASSIGN_OR_RETURN(FloatTensor t, ConstantInput(index, node, i + 1, kRoles[i]));
    if (static_cast<int64_t>(t.values.size()) != channels) {
      return NodeError(
          node, absl::StrCat(kRoles[i], " has ", t.values.size(),
                             " values; the preceding Conv has ", channels, " output channels"));
    }
    params[i] = std::move(t.values);
  }
  if (bias.empty()) bias.assign(channels, 0.0f);
  const int64_t per_channel = static_cast<int64_t>(weight.size()) / channels;
  for (int64_t c = 0; c < channels; ++c) {
    const double var = params[3][c];
    if (!(var + eps > 0)) {
      return NodeError(node, absl::StrCat("var + epsilon is not positive for channel ", c));
    }
    const double scale = params[0][c] / std::sqrt(var + eps);
    for (int64_t i = 0; i < per_channel; ++i) {
      float& w = weight[c * per_channel + i];
      w = static_cast<float>(w * scale);
    }
    bias[c] = static_cast<float>((bias[c] - params[2][c]) * scale + params[1][c]);
  }
  return absl::OkStatus();
}

// Clip's bounds from attributes (opset < 11) or constant inputs (>= 11).
absl::StatusOr<Activation> ReadClip(const GraphIndex& index, const onnx::NodeProto& node) {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  ASSIGN_OR_RETURN(std::optional<float> min_attr, loader_internal::FloatAttr(node, "min"));
  ASSIGN_OR_RETURN(std::optional<float> max_attr, loader_internal::FloatAttr(node, "max"));
  if (min_attr.has_value()) lo = *min_attr;
  if (max_attr.has_value()) hi = *max_attr;
  for (int i = 1; i <= 2; ++i) {
    if (!HasInput(node, i)) continue;
    ASSIGN_OR_RETURN(FloatTensor t, ConstantInput(index, node, i, i == 1 ? "min" : "max"));
    if (t.values.size() != 1) return NodeError(node, "min and max must be scalars");
    (i == 1 ? lo : hi) = t.values[0];
  }
  // Opset-6 defaults are the float limits rather than infinities.
  if (hi >= std::numeric_limits<float>::max()) hi = std::numeric_limits<double>::infinity();
  if (lo == 0 && hi == 6) return Activation::kRelu6;
  if (lo == 0 && std::isinf(hi)) return Activation::kRelu;
  return NodeError(node, absl::StrCat("Clip(min=", lo, ", max=", hi,
                                      ") is neither ReLU (0, inf) nor ReLU6 (0, 6)"));
}

std::vector<int64_t> DeclaredDims(const onnx::ValueInfoProto& value) {
  std::vector<int64_t> dims;
  if (!value.type().tensor_type().has_shape()) return dims;
  for (const auto& d : value.type().tensor_type().shape().dim()) {
    dims.push_back(d.has_dim_value() && d.dim_value() > 0 ? d.dim_value() : -1);
  }
  return dims;
}

absl::Status CheckDeclared(const onnx::ValueInfoProto& value, absl::string_view what) {
  const auto& type = value.type();
  if (!type.has_tensor_type() ||
      type.tensor_type().elem_type() != onnx::TensorProto_DataType_FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat("graph ", what, " '", value.name(), "' must be a FLOAT tensor"));
  }
  std::vector<int64_t> dims = DeclaredDims(value);
  if (type.tensor_type().has_shape() && dims.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("graph ", what, " '", value.name(),
                                                   "' must be 4-D NCHW, got rank ", dims.size()));
  }
  return absl::OkStatus();
}

// Walks the chain from the graph input to its output, building layers.
class ChainBuilder {
 public:
  explicit ChainBuilder(const GraphIndex& index) : index_(index) {}

  absl::Status Walk(const std::string& input, const std::string& output, int64_t in_channels) {
    channels_ = in_channels;
    std::string current = input;
    while (current != output) {
      const std::vector<const onnx::NodeProto*>& consumers = index_.Consumers(current);
      if (consumers.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", current, "' is neither consumed nor the graph output"));
      }
      if (consumers.size() > 1) {
        return NodeError(*consumers[1], absl::StrCat("tensor '", current, "' also feeds node '",
                                                     consumers[0]->name(),
                                                     "'; branching graphs are not supported"));
      }
      const onnx::NodeProto& node = *consumers[0];
      RETURN_IF_ERROR(Step(node, current));
      visited_.insert(&node);
      current = node.output(0);
    }
    if (stage_ == Stage::kDepthwise) {
      return NodeError(*last_conv_,
                       "the graph ends after this depthwise Conv; expected a 1x1 "
                       "pointwise Conv to follow");
    }
    if (layers_.empty()) return absl::InvalidArgumentError("the graph has no Conv nodes");
    return absl::OkStatus();
  }

  bool Visited(const onnx::NodeProto* node) const { return visited_.contains(node); }
  std::vector<Layer> TakeLayers() { return std::move(layers_); }

 private:
  absl::Status Step(const onnx::NodeProto& node, const std::string& current) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return NodeError(node, absl::StrCat("custom domain '", node.domain(), "' is not supported"));
    }
    if (node.input_size() < 1 || node.input(0) != current) {
      return NodeError(node,
                       absl::StrCat("reads tensor '", current,
                                    "' as a non-data input; only a single chain is supported"));
    }
    if (node.output_size() < 1 || node.output(0).empty()) {
      return NodeError(node, "has no output");
    }
    for (int i = 1; i < node.output_size(); ++i) {
      if (!node.output(i).empty() && !index_.Consumers(node.output(i)).empty()) {
        return NodeError(node, absl::StrCat("its extra output '", node.output(i),
                                            "' is used; only single-output nodes are supported"));
      }
    }
    const std::string& op = node.op_type();
    if (op == "Identity") return absl::OkStatus();
    if (op == "Conv") return StepConv(node);
    if (op == "BatchNormalization") return StepBatchNorm(node);
    if (op == "Relu") return StepActivation(node, Activation::kRelu);
    if (op == "Clip") {
      ASSIGN_OR_RETURN(Activation act, ReadClip(index_, node));
      return StepActivation(node, act);
    }
    return NodeError(node,
                     "unsupported operator; only Conv (depthwise then 1x1 pointwise), "
                     "BatchNormalization, Relu, Clip(0, 6) and Identity are supported");
  }

  absl::Status StepConv(const onnx::NodeProto& node) {
    ASSIGN_OR_RETURN(ConvParams p, ReadConv(index_, node));
    const int64_t in_channels = p.group * p.in_per_group;
    if (channels_ > 0 && in_channels != channels_) {
      return NodeError(
          node, absl::StrCat("expects ", in_channels, " input channels (group ", p.group, " x ",
                             p.in_per_group, ") but receives ", channels_));
    }
    const int64_t c = in_channels;
    if (p.group != c && p.group != 1) {
      return NodeError(node, absl::StrCat("group=", p.group, " is neither the channel count ", c,
                                          " (depthwise) nor 1 (pointwise); grouped convolutions "
                                          "are not supported"));
    }
    if (stage_ != Stage::kDepthwise) {
      RETURN_IF_ERROR(StartLayer(node, c, p));
    } else {
      RETURN_IF_ERROR(FinishLayer(node, p));
    }
    channels_ = p.out_channels;
    last_conv_ = &node;
    tail_ = Tail::kConv;
    return absl::OkStatus();
  }

  // A depthwise Conv over `c` channels: the start of a new layer.
  absl::Status StartLayer(const onnx::NodeProto& node, int64_t c, ConvParams& p) {
    if (p.group != c) {
      return NodeError(node, absl::StrCat("a standard ", p.kernel, "x", p.kernel,
                                          " convolution (group=1 over ", c,
                                          " channels) is not supported; expected a depthwise Conv "
                                          "with group=",
                                          c));
    }
    if (p.kernel % 2 == 0 || p.kernel > 7) {
      return NodeError(node, absl::StrCat("kernel ", p.kernel, " is not supported (odd, 1..7)"));
    }
    if (p.out_channels % c != 0) {
      return NodeError(node, absl::StrCat(p.out_channels,
                                          " output channels are not a multiple "
                                          "of the ",
                                          c, " input channels"));
    }
    Layer layer;
    layer.spec.in_channels = c;
    layer.spec.depth_multiplier = p.out_channels / c;
    layer.spec.kernel = p.kernel;
    layer.spec.stride = p.stride;
    layer.spec.padding = p.padding;
    layer.spec.dilation = p.dilation;
    layer.spec.depthwise_bias = !p.bias.empty();
    layer.weights.depthwise = std::move(p.weight);
    layer.weights.depthwise_bias = std::move(p.bias);
    layers_.push_back(std::move(layer));
    stage_ = Stage::kDepthwise;
    return absl::OkStatus();
  }

  // The 1x1 pointwise Conv that completes the layer its depthwise Conv began.
  absl::Status FinishLayer(const onnx::NodeProto& node, ConvParams& p) {
    if (p.group != 1) {
      return NodeError(
          node, absl::StrCat("group=", p.group, " after depthwise Conv '", last_conv_->name(),
                             "': expected a 1x1 pointwise Conv with group=1"));
    }
    if (p.kernel != 1 || p.stride != 1 || p.padding != 0) {
      return NodeError(node, absl::StrCat("expected a 1x1 pointwise Conv (stride 1, no padding) "
                                          "after depthwise Conv '",
                                          last_conv_->name(), "', got kernel ", p.kernel,
                                          ", stride ", p.stride, ", padding ", p.padding));
    }
    Layer& layer = layers_.back();
    layer.spec.out_channels = p.out_channels;
    layer.spec.pointwise_bias = !p.bias.empty();
    layer.weights.pointwise = std::move(p.weight);
    layer.weights.pointwise_bias = std::move(p.bias);
    stage_ = Stage::kPointwise;
    return absl::OkStatus();
  }

  absl::Status StepBatchNorm(const onnx::NodeProto& node) {
    if (last_conv_ == nullptr || tail_ != Tail::kConv) {
      return NodeError(node, "BatchNormalization must directly follow a Conv to be folded");
    }
    LayerWeights& w = layers_.back().weights;
    if (stage_ == Stage::kDepthwise) {
      layers_.back().spec.depthwise_bias = true;
      return Fold(node, w.depthwise, w.depthwise_bias);
    }
    layers_.back().spec.pointwise_bias = true;
    return Fold(node, w.pointwise, w.pointwise_bias);
  }

  absl::Status Fold(const onnx::NodeProto& node, std::vector<float>& weight,
                    std::vector<float>& bias) {
    RETURN_IF_ERROR(FoldBatchNorm(index_, node, weight, bias, channels_));
    tail_ = Tail::kBatchNorm;
    return absl::OkStatus();
  }

  absl::Status StepActivation(const onnx::NodeProto& node, Activation act) {
    if (last_conv_ == nullptr) return NodeError(node, "an activation must follow a Conv");
    if (tail_ == Tail::kActivation) {
      return NodeError(node, absl::StrCat("a second activation after Conv '", last_conv_->name(),
                                          "' is not supported"));
    }
    LayerSpec& spec = layers_.back().spec;
    (stage_ == Stage::kDepthwise ? spec.depthwise_activation : spec.pointwise_activation) = act;
    tail_ = Tail::kActivation;
    return absl::OkStatus();
  }

  const GraphIndex& index_;
  std::vector<Layer> layers_;
  int64_t channels_ = -1;
  Stage stage_ = Stage::kStart;
  Tail tail_ = Tail::kConv;
  const onnx::NodeProto* last_conv_ = nullptr;
  absl::flat_hash_set<const onnx::NodeProto*> visited_;
};

absl::StatusOr<int64_t> DefaultOpset(const onnx::ModelProto& model) {
  for (const onnx::OperatorSetIdProto& id : model.opset_import()) {
    if (id.domain().empty() || id.domain() == "ai.onnx") {
      if (id.version() < kMinOpset || id.version() > kMaxOpset) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ONNX opset ", id.version(), " is not supported (", kMinOpset, "..", kMaxOpset, ")"));
      }
      return id.version();
    }
  }
  return absl::InvalidArgumentError("the ONNX model declares no opset for the default domain");
}

}  // namespace

absl::StatusOr<ImportedModel> ImportOnnx(absl::string_view bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("the ONNX model is empty (0 bytes)");
  if (static_cast<int64_t>(bytes.size()) >= kMaxFileBytes) {
    return absl::InvalidArgumentError("the ONNX model is larger than 2 GiB");
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid ONNX model: protobuf parsing failed on ", bytes.size(),
                     " bytes (malformed or truncated file)"));
  }
  if (!model.has_graph()) {
    return absl::InvalidArgumentError("the ONNX model has no graph (truncated file?)");
  }
  ImportedModel out;
  ASSIGN_OR_RETURN(out.opset, DefaultOpset(model));
  out.producer = absl::StrCat(model.producer_name(), " ", model.producer_version());
  const onnx::GraphProto& graph = model.graph();
  ASSIGN_OR_RETURN(GraphIndex index, GraphIndex::Build(graph));

  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const onnx::ValueInfoProto& in : graph.input()) {
    if (index.Constant(in.name()) == nullptr) inputs.push_back(&in);
  }
  if (inputs.size() != 1 || graph.output_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ONNX graph must have exactly one input and "
                     "one output, got ",
                     inputs.size(), " and ", graph.output_size()));
  }
  RETURN_IF_ERROR(CheckDeclared(*inputs[0], "input"));
  RETURN_IF_ERROR(CheckDeclared(graph.output(0), "output"));
  out.input_name = inputs[0]->name();
  out.output_name = graph.output(0).name();
  out.input_dims = DeclaredDims(*inputs[0]);
  out.output_dims = DeclaredDims(graph.output(0));

  ChainBuilder chain(index);
  const int64_t declared_c = out.input_dims.size() == 4 ? out.input_dims[1] : -1;
  RETURN_IF_ERROR(chain.Walk(out.input_name, out.output_name, declared_c));
  for (const onnx::NodeProto& node : graph.node()) {
    if (!index.ProducesConstant(&node) && !chain.Visited(&node)) {
      return NodeError(node, "is not on the path from the graph input to its output");
    }
  }
  out.spec.layers = chain.TakeLayers();
  if (absl::Status s = ValidateModel(out.spec); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("imported model is invalid: ", s.message()));
  }
  if (out.output_dims.size() == 4 && out.output_dims[1] > 0 &&
      out.output_dims[1] != out.spec.OutChannels()) {
    return absl::InvalidArgumentError(absl::StrCat("graph output '", out.output_name, "' declares ",
                                                   out.output_dims[1], " channels; the model has ",
                                                   out.spec.OutChannels()));
  }
  return out;
}

absl::StatusOr<ImportedModel> ImportOnnxFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ONNX model '", path, "'"));
  std::stringstream buffer;
  buffer << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("cannot read ONNX model '", path, "'"));
  absl::StatusOr<ImportedModel> imported = ImportOnnx(buffer.str());
  if (!imported.ok()) {
    return absl::Status(imported.status().code(),
                        absl::StrCat(path, ": ", imported.status().message()));
  }
  return imported;
}

}  // namespace sepconv
