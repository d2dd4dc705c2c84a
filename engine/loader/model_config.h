#ifndef SEPCONV_ENGINE_LOADER_MODEL_CONFIG_H_
#define SEPCONV_ENGINE_LOADER_MODEL_CONFIG_H_

// config.pbtxt: parsing (protobuf text format against sepconv.ModelConfig,
// see proto/model_config.proto), validation, the `sepconv` layers section as
// LayerSpecs, and completing a config from the model it describes (what
// Triton calls auto-complete). Stateless; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/model_spec.h"
#include "model_config.pb.h"

namespace sepconv {

inline constexpr char kDefaultModelFilename[] = "model.onnx";

// Parses `text`. Syntax errors and unknown fields are INVALID_ARGUMENT
// "<source>:<line>:<column>: <protobuf's message naming the field>".
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view text, absl::string_view source);
// Reads and parses the file at `path` (NOT_FOUND when it cannot be opened).
absl::StatusOr<ModelConfig> ReadModelConfigFile(const std::string& path);

// Checks the config's values on their own; `model_name` is the model's
// folder name, which a non-empty `name` must equal. Refuses: platforms and
// backends other than ONNX/sepconv, negative max_batch_size, more than one
// input or output, a data_type other than TYPE_FP32, FORMAT_NHWC, dims not
// of the form [C, H, W] (max_batch_size > 0) or [N, C, H, W] (== 0) with
// entries -1 or positive, dynamic_batching with max_batch_size 0, preferred
// batch sizes outside 1..max_batch_size, GPU instance groups, a zero
// num_versions, non-positive specific versions, and invalid layers.
absl::Status ValidateModelConfig(const ModelConfig& config, absl::string_view model_name);

// The `sepconv` section's layers with defaults applied: kernel 3, stride 1,
// "same" padding, dilation 1, depth multiplier 1, both biases; an
// in_channels of 0 chains from the previous layer's out_channels.
absl::StatusOr<std::vector<LayerSpec>> LayerSpecsFromConfig(const SepconvModel& sepconv);

// What the model file says about its input and output.
struct ModelIo {
  std::string input_name = "input";
  std::string output_name = "output";
  std::vector<int64_t> input_dims;   // NCHW, -1 where variable; empty = unknown
  std::vector<int64_t> output_dims;  // likewise
};

// Fills what `config` leaves out from the model: `name`, and the input and
// output entries (name, TYPE_FP32, dims in the max_batch_size convention,
// channels from `spec`, spatial dims from `io` or -1). Stated values must
// agree with the model: tensor names, channel counts and fixed spatial
// sizes; a mismatch is INVALID_ARGUMENT naming both values.
absl::StatusOr<ModelConfig> CompleteModelConfig(ModelConfig config, absl::string_view model_name,
                                                const ModelSpec& spec, const ModelIo& io);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_LOADER_MODEL_CONFIG_H_
