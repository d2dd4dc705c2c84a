#ifndef SEPCONV_ENGINE_LOADER_ONNX_IMPORT_H_
#define SEPCONV_ENGINE_LOADER_ONNX_IMPORT_H_

// Imports an ONNX graph of depthwise-separable blocks, as torch.onnx.export
// writes them (opsets 7..18), into a ModelSpec.
//
// Accepted: a single chain from the one graph input to the one graph output
// of blocks Conv(group = C) -> Conv(1x1, group = 1), each Conv optionally
// followed by BatchNormalization (folded into that Conv's weights and bias
// here, at load) and then by Relu or Clip(0, 6) (ReLU6; min/max as
// attributes (opset < 11) or as inputs from initializers or Constant
// nodes); Identity anywhere. Weights come from initializers (raw_data or
// float_data). Kernel, stride, symmetric pads, dilation and group come from
// the Conv attributes.
//
// Everything else is refused with INVALID_ARGUMENT naming the node, its op
// type and why: other ops (Add, MaxPool, ...), a Conv whose group is neither
// C nor 1, a standard KxK Conv, asymmetric pads, branches, a dangling
// depthwise Conv, external or non-float weights. Unparseable (malformed or
// truncated) bytes are INVALID_ARGUMENT too. Stateless; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/model_spec.h"

namespace sepconv {

struct ImportedModel {
  ModelSpec spec;  // validated
  std::string input_name;
  std::string output_name;
  // The graph's declared NCHW shapes; -1 where symbolic (dynamic axes).
  std::vector<int64_t> input_dims;
  std::vector<int64_t> output_dims;
  int64_t opset = 0;     // of the default ("ai.onnx") domain
  std::string producer;  // e.g. "pytorch 1.13.1"
};

// `bytes` is a serialized onnx.ModelProto.
absl::StatusOr<ImportedModel> ImportOnnx(absl::string_view bytes);

// Reads and imports `path`; errors name the path.
absl::StatusOr<ImportedModel> ImportOnnxFile(const std::string& path);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_LOADER_ONNX_IMPORT_H_
