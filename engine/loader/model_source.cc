#include "engine/loader/model_source.h"

#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/loader/internal/status_macros.h"
#include "engine/loader/onnx_import.h"
#include "engine/random_model.h"

namespace sepconv {
namespace {

absl::Status InFolder(const absl::Status& status, const std::string& dir) {
  return absl::Status(status.code(),
                      absl::StrCat("version folder '", dir, "': ", status.message()));
}

absl::StatusOr<LoadedModel> Load(const ModelConfig& config, absl::string_view model_name,
                                 const std::string& dir) {
  const std::string filename = config.default_model_filename().empty()
                                   ? std::string(kDefaultModelFilename)
                                   : config.default_model_filename();
  const std::filesystem::path file = std::filesystem::path(dir) / filename;
  std::error_code ec;
  const bool has_file = std::filesystem::exists(file, ec);
  LoadedModel loaded;
  ModelIo io;
  if (config.has_sepconv()) {
    if (has_file) {
      return absl::InvalidArgumentError(absl::StrCat(
          "holds ", filename, " but the config describes layers (sepconv); remove one of them"));
    }
    ASSIGN_OR_RETURN(std::vector<LayerSpec> layers, LayerSpecsFromConfig(config.sepconv()));
    ASSIGN_OR_RETURN(ModelSpec spec, MakeRandomModel(layers, config.sepconv().seed()));
    loaded.spec = std::make_shared<const ModelSpec>(std::move(spec));
    loaded.source = absl::StrCat("config layers, seed ", config.sepconv().seed());
  } else {
    if (!has_file) {
      return absl::NotFoundError(absl::StrCat("holds no ", filename,
                                              " (and the config describes "
                                              "no layers)"));
    }
    ASSIGN_OR_RETURN(ImportedModel imported, ImportOnnxFile(file.string()));
    io.input_name = imported.input_name;
    io.output_name = imported.output_name;
    io.input_dims = imported.input_dims;
    io.output_dims = imported.output_dims;
    loaded.spec = std::make_shared<const ModelSpec>(std::move(imported.spec));
    loaded.source = file.string();
  }
  ASSIGN_OR_RETURN(loaded.config, CompleteModelConfig(config, model_name, *loaded.spec, io));
  return loaded;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModelVersion(const ModelConfig& config,
                                             absl::string_view model_name,
                                             const std::string& version_dir) {
  const absl::Time start = absl::Now();
  absl::StatusOr<LoadedModel> loaded = Load(config, model_name, version_dir);
  if (!loaded.ok()) return InFolder(loaded.status(), version_dir);
  loaded->load_time = absl::Now() - start;
  return loaded;
}

}  // namespace sepconv
