#ifndef SEPCONV_ENGINE_LOADER_MODEL_SOURCE_H_
#define SEPCONV_ENGINE_LOADER_MODEL_SOURCE_H_

// Loads one version of one model: from the version folder's ONNX file, or,
// when the config describes layers (its `sepconv` section), from those
// layers with seeded weights and no file. Stateless; thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/loader/model_config.h"
#include "engine/model_spec.h"

namespace sepconv {

struct LoadedModel {
  std::shared_ptr<const ModelSpec> spec;
  // The config completed from the model (CompleteModelConfig).
  ModelConfig config;
  // Where the weights came from: the ONNX path, or "config layers, seed N".
  std::string source;
  absl::Duration load_time;  // reading, importing and validating
};

// Loads `version_dir` of model `model_name` under `config` (validated with
// ValidateModelConfig; an empty ModelConfig when there is no config.pbtxt).
// Without layers in the config, the folder must hold the ONNX file
// (config.default_model_filename, else "model.onnx"): NOT_FOUND names the
// missing file (e.g. an empty version folder). With layers, the folder may
// be missing or empty but must not hold that file (ambiguous: refused).
// Every error names the folder.
absl::StatusOr<LoadedModel> LoadModelVersion(const ModelConfig& config,
                                             absl::string_view model_name,
                                             const std::string& version_dir);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_LOADER_MODEL_SOURCE_H_
