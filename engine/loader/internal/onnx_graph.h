#ifndef SEPCONV_ENGINE_LOADER_INTERNAL_ONNX_GRAPH_H_
#define SEPCONV_ENGINE_LOADER_INTERNAL_ONNX_GRAPH_H_

// Read-only helpers over an onnx::GraphProto for the importer: constant
// tensors (initializers and Constant nodes), consumers of each tensor, typed
// attribute access, and float payloads. Errors name the node and op type.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "onnx/onnx_pb.h"

namespace sepconv {
namespace loader_internal {

// "ONNX node 'name' (op Type): why" as INVALID_ARGUMENT.
absl::Status NodeError(const onnx::NodeProto& node, absl::string_view why);

// A constant tensor's float values and dims.
struct FloatTensor {
  std::vector<int64_t> dims;
  std::vector<float> values;
};

// Decodes a FLOAT tensor from raw_data or float_data; `what` names it in
// errors. External data and other element types are refused.
absl::StatusOr<FloatTensor> DecodeFloatTensor(const onnx::TensorProto& tensor,
                                              absl::string_view what);

class GraphIndex {
 public:
  // Indexes `graph`, which must outlive this object.
  static absl::StatusOr<GraphIndex> Build(const onnx::GraphProto& graph);

  // The initializer or Constant-node value named `name`, or null.
  const onnx::TensorProto* Constant(absl::string_view name) const;
  // Whether `node` is a Constant, or an Identity of a constant.
  bool ProducesConstant(const onnx::NodeProto* node) const;
  // The nodes (excluding constant producers) that read tensor `name`.
  const std::vector<const onnx::NodeProto*>& Consumers(absl::string_view name) const;

 private:
  absl::flat_hash_map<std::string, const onnx::TensorProto*> constants_;
  absl::flat_hash_set<const onnx::NodeProto*> constant_nodes_;
  // Tensors synthesized from Constant's value_float(s) attributes.
  std::vector<std::unique_ptr<onnx::TensorProto>> owned_;
  absl::flat_hash_map<std::string, std::vector<const onnx::NodeProto*>> consumers_;
};

// Input `index` of `node` as a constant float tensor; NodeError when the
// input is missing or not constant.
absl::StatusOr<FloatTensor> ConstantInput(const GraphIndex& index, const onnx::NodeProto& node,
                                          int index_in_node, absl::string_view role);
// True when `node` has a non-empty input at `index_in_node`.
bool HasInput(const onnx::NodeProto& node, int index_in_node);

// Typed attribute lookups: nullopt when absent, NodeError on a type mismatch.
absl::StatusOr<std::optional<int64_t>> IntAttr(const onnx::NodeProto& node, absl::string_view name);
absl::StatusOr<std::optional<float>> FloatAttr(const onnx::NodeProto& node, absl::string_view name);
absl::StatusOr<std::optional<std::vector<int64_t>>> IntsAttr(const onnx::NodeProto& node,
                                                             absl::string_view name);
absl::StatusOr<std::optional<std::string>> StringAttr(const onnx::NodeProto& node,
                                                      absl::string_view name);

}  // namespace loader_internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_LOADER_INTERNAL_ONNX_GRAPH_H_
