#include "engine/loader/model_warmup.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sepconv {
namespace {

absl::Status Invalid(int index, const ModelWarmup& sample, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config: model_warmup[", index, "] ('", sample.name(), "'): ", what));
}

// NCHW from a batch size and [C, H, W], or from [N, C, H, W].
Dims4 ToDims(int64_t batch, const google::protobuf::RepeatedField<int64_t>& dims) {
  if (dims.size() == 3) return Dims4{batch, dims[0], dims[1], dims[2]};
  return Dims4{dims[0], dims[1], dims[2], dims[3]};
}

absl::StatusOr<Dims4> SampleShape(const ModelConfig& config, int index) {
  const ModelWarmup& sample = config.model_warmup(index);
  const int32_t max_batch = config.max_batch_size();
  if (sample.batch_size() < 1) return Invalid(index, sample, "batch_size must be >= 1");
  if (max_batch == 0 && sample.batch_size() != 1) {
    return Invalid(index, sample,
                   absl::StrCat("batch_size ", sample.batch_size(),
                                " must be 1 when max_batch_size is 0 (dims hold the batch)"));
  }
  if (max_batch > 0 && sample.batch_size() > static_cast<uint32_t>(max_batch)) {
    return Invalid(
        index, sample,
        absl::StrCat("batch_size ", sample.batch_size(), " exceeds max_batch_size ", max_batch));
  }
  if (sample.inputs_size() != 1) {
    return Invalid(index, sample,
                   absl::StrCat("needs exactly one input, has ", sample.inputs_size()));
  }
  const auto& [name, input] = *sample.inputs().begin();
  if (config.input_size() == 1 && !config.input(0).name().empty() &&
      name != config.input(0).name()) {
    return Invalid(
        index, sample,
        absl::StrCat("input '", name, "' is not the model's input '", config.input(0).name(), "'"));
  }
  if (input.data_type() != TYPE_INVALID && input.data_type() != TYPE_FP32) {
    return Invalid(
        index, sample,
        absl::StrCat("input data_type ", DataType_Name(input.data_type()), " is not TYPE_FP32"));
  }
  if (input.input_data_type_case() == ModelWarmup::Input::kInputDataFile) {
    return Invalid(index, sample, "input_data_file is not supported; use zero_data or random_data");
  }
  const int rank = max_batch > 0 ? 3 : 4;
  const bool positive =
      std::all_of(input.dims().begin(), input.dims().end(), [](int64_t d) { return d > 0; });
  if (input.dims_size() != rank || !positive) {
    return Invalid(
        index, sample,
        absl::StrCat("input dims [", absl::StrJoin(input.dims(), ", "), "] must be ", rank,
                     " positive entries (", rank == 3 ? "[C, H, W]" : "[N, C, H, W]", ")"));
  }
  return ToDims(sample.batch_size(), input.dims());
}

}  // namespace

std::vector<int> WarmupBatchSizes(int max_batch_size) {
  const int max = std::max(1, max_batch_size);
  std::vector<int> sizes;
  for (int n = 1; n <= max; n = n < 8 ? n + 1 : 2 * n) sizes.push_back(n);
  if (sizes.back() != max) sizes.push_back(max);
  return sizes;
}

absl::StatusOr<std::vector<Dims4>> WarmupShapes(const ModelConfig& config) {
  std::vector<Dims4> shapes;
  for (int i = 0; i < config.model_warmup_size(); ++i) {
    absl::StatusOr<Dims4> shape = SampleShape(config, i);
    if (!shape.ok()) return shape.status();
    shapes.push_back(*shape);
  }
  if (config.model_warmup_size() > 0 || config.input_size() != 1) return shapes;
  const auto& dims = config.input(0).dims();
  const int rank = config.max_batch_size() > 0 ? 3 : 4;
  if (dims.size() != rank ||
      std::any_of(dims.begin(), dims.end(), [](int64_t d) { return d < 1; })) {
    return shapes;  // not fixed: nothing to warm
  }
  if (rank == 4) return std::vector<Dims4>{ToDims(0, dims)};
  std::vector<int> sizes = WarmupBatchSizes(config.max_batch_size());
  for (int32_t batch : config.dynamic_batching().preferred_batch_size()) {
    if (batch > 1 && batch <= config.max_batch_size() &&
        std::find(sizes.begin(), sizes.end(), batch) == sizes.end()) {
      sizes.push_back(batch);
    }
  }
  for (int batch : sizes) shapes.push_back(ToDims(batch, dims));
  return shapes;
}

}  // namespace sepconv
