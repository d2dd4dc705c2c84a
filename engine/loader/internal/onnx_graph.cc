#include "engine/loader/internal/onnx_graph.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sepconv {
namespace loader_internal {
namespace {

// Far beyond any separable-conv weight; keeps the size arithmetic safe.
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, absl::string_view name) {
  for (const onnx::AttributeProto& attr : node.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

absl::Status AttrTypeError(const onnx::NodeProto& node, const onnx::AttributeProto& attr,
                           absl::string_view want) {
  return NodeError(node, absl::StrCat("attribute '", attr.name(), "' must be ", want, ", got ",
                                      onnx::AttributeProto_AttributeType_Name(attr.type())));
}

}  // namespace

absl::Status NodeError(const onnx::NodeProto& node, absl::string_view why) {
  std::string name = node.name();
  if (name.empty() && node.output_size() > 0)
    name = absl::StrCat("<unnamed, output ", node.output(0), ">");
  return absl::InvalidArgumentError(
      absl::StrCat("ONNX node '", name, "' (op ", node.op_type(), "): ", why));
}

absl::StatusOr<FloatTensor> DecodeFloatTensor(const onnx::TensorProto& tensor,
                                              absl::string_view what) {
  if (tensor.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", tensor.name(), "' uses external data, which is not supported"));
  }
  if (tensor.data_type() != onnx::TensorProto_DataType_FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", tensor.name(), "' has element type ",
                     onnx::TensorProto_DataType_Name(
                         static_cast<onnx::TensorProto_DataType>(tensor.data_type())),
                     "; only FLOAT is supported"));
  }
  FloatTensor out;
  int64_t count = 1;
  for (int64_t d : tensor.dims()) {
    if (d < 0 || (d > 0 && count > kMaxTensorElements / d)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", tensor.name(), "' has an invalid or too large shape"));
    }
    count *= d;
    out.dims.push_back(d);
  }
  if (!tensor.raw_data().empty()) {
    if (static_cast<int64_t>(tensor.raw_data().size()) != count * 4) {
      return absl::InvalidArgumentError(absl::StrCat(what, " '", tensor.name(), "' holds ",
                                                     tensor.raw_data().size(),
                                                     " bytes; its shape needs ", count * 4));
    }
    // ONNX raw_data is little-endian, as is every platform we build for.
    out.values.resize(count);
    std::memcpy(out.values.data(), tensor.raw_data().data(), count * 4);
  } else {
    if (tensor.float_data_size() != count) {
      return absl::InvalidArgumentError(absl::StrCat(what, " '", tensor.name(), "' holds ",
                                                     tensor.float_data_size(),
                                                     " floats; its shape needs ", count));
    }
    out.values.assign(tensor.float_data().begin(), tensor.float_data().end());
  }
  return out;
}

absl::StatusOr<GraphIndex> GraphIndex::Build(const onnx::GraphProto& graph) {
  GraphIndex index;
  for (const onnx::TensorProto& init : graph.initializer()) {
    index.constants_[init.name()] = &init;
  }
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx")) {
      if (node.output_size() != 1) return NodeError(node, "must have exactly one output");
      if (node.attribute_size() != 1) {
        return NodeError(node, "must have exactly one value attribute");
      }
      const onnx::AttributeProto* attr = &node.attribute(0);
      if (attr->name() == "value" && attr->type() == onnx::AttributeProto::TENSOR) {
        index.constants_[node.output(0)] = &attr->t();
      } else if ((attr->name() == "value_float" && attr->type() == onnx::AttributeProto::FLOAT) ||
                 (attr->name() == "value_floats" && attr->type() == onnx::AttributeProto::FLOATS)) {
        auto tensor = std::make_unique<onnx::TensorProto>();
        tensor->set_name(node.output(0));
        tensor->set_data_type(onnx::TensorProto_DataType_FLOAT);
        if (attr->name() == "value_float") {
          tensor->add_float_data(attr->f());
        } else {
          tensor->add_dims(attr->floats_size());
          for (float f : attr->floats()) tensor->add_float_data(f);
        }
        index.constants_[node.output(0)] = tensor.get();
        index.owned_.push_back(std::move(tensor));
      } else {
        return NodeError(node, absl::StrCat("unsupported value attribute '", attr->name(), "'"));
      }
      index.constant_nodes_.insert(&node);
      continue;
    }
    // Identity of a constant (torch emits these for deduplicated
    // initializers) is that constant under another name.
    if (node.op_type() == "Identity" && node.input_size() == 1 && node.output_size() == 1) {
      if (const onnx::TensorProto* value = index.Constant(node.input(0)); value != nullptr) {
        index.constants_[node.output(0)] = value;
        index.constant_nodes_.insert(&node);
        continue;
      }
    }
    for (const std::string& input : node.input()) {
      if (!input.empty()) index.consumers_[input].push_back(&node);
    }
  }
  return index;
}

bool GraphIndex::ProducesConstant(const onnx::NodeProto* node) const {
  return constant_nodes_.contains(node);
}

const onnx::TensorProto* GraphIndex::Constant(absl::string_view name) const {
  auto it = constants_.find(name);
  return it == constants_.end() ? nullptr : it->second;
}

const std::vector<const onnx::NodeProto*>& GraphIndex::Consumers(absl::string_view name) const {
  static const std::vector<const onnx::NodeProto*>* const kNone =
      new std::vector<const onnx::NodeProto*>();
  auto it = consumers_.find(name);
  return it == consumers_.end() ? *kNone : it->second;
}

bool HasInput(const onnx::NodeProto& node, int index_in_node) {
  return index_in_node < node.input_size() && !node.input(index_in_node).empty();
}

absl::StatusOr<FloatTensor> ConstantInput(const GraphIndex& index, const onnx::NodeProto& node,
                                          int index_in_node, absl::string_view role) {
  if (!HasInput(node, index_in_node)) {
    return NodeError(node, absl::StrCat("missing input ", index_in_node, " (", role, ")"));
  }
  const std::string& name = node.input(index_in_node);
  const onnx::TensorProto* tensor = index.Constant(name);
  if (tensor == nullptr) {
    return NodeError(
        node, absl::StrCat(role, " '", name, "' is not an initializer or Constant; only constant ",
                           role, " is supported"));
  }
  absl::StatusOr<FloatTensor> decoded = DecodeFloatTensor(*tensor, role);
  if (!decoded.ok()) return NodeError(node, decoded.status().message());
  return decoded;
}

absl::StatusOr<std::optional<int64_t>> IntAttr(const onnx::NodeProto& node,
                                               absl::string_view name) {
  const onnx::AttributeProto* attr = FindAttr(node, name);
  if (attr == nullptr) return std::optional<int64_t>();
  if (attr->type() != onnx::AttributeProto::INT) return AttrTypeError(node, *attr, "INT");
  return std::optional<int64_t>(attr->i());
}

absl::StatusOr<std::optional<float>> FloatAttr(const onnx::NodeProto& node,
                                               absl::string_view name) {
  const onnx::AttributeProto* attr = FindAttr(node, name);
  if (attr == nullptr) return std::optional<float>();
  if (attr->type() != onnx::AttributeProto::FLOAT) return AttrTypeError(node, *attr, "FLOAT");
  return std::optional<float>(attr->f());
}

absl::StatusOr<std::optional<std::vector<int64_t>>> IntsAttr(const onnx::NodeProto& node,
                                                             absl::string_view name) {
  const onnx::AttributeProto* attr = FindAttr(node, name);
  if (attr == nullptr) return std::optional<std::vector<int64_t>>();
  if (attr->type() != onnx::AttributeProto::INTS) return AttrTypeError(node, *attr, "INTS");
  return std::optional<std::vector<int64_t>>(
      std::vector<int64_t>(attr->ints().begin(), attr->ints().end()));
}

absl::StatusOr<std::optional<std::string>> StringAttr(const onnx::NodeProto& node,
                                                      absl::string_view name) {
  const onnx::AttributeProto* attr = FindAttr(node, name);
  if (attr == nullptr) return std::optional<std::string>();
  if (attr->type() != onnx::AttributeProto::STRING) return AttrTypeError(node, *attr, "STRING");
  return std::optional<std::string>(attr->s());
}

}  // namespace loader_internal
}  // namespace sepconv
