#include "engine/loader/model_config.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/loader/internal/status_macros.h"
#include "engine/loader/model_warmup.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace sepconv {
namespace {

// Keeps the first error with its position (protobuf's lines and columns
// are 0-based; editors count from 1).
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error_.empty()) error_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", what));
}

std::string DimsString(const google::protobuf::RepeatedField<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// Rank and entries of `dims` for a tensor named `what`.
absl::Status CheckDims(const google::protobuf::RepeatedField<int64_t>& dims, int32_t max_batch_size,
                       absl::string_view what) {
  if (dims.empty()) return absl::OkStatus();  // completed from the model
  const int want = max_batch_size > 0 ? 3 : 4;
  if (dims.size() != want) {
    return Invalid(absl::StrCat(what, " dims ", DimsString(dims), " must have ", want, " entries (",
                                max_batch_size > 0
                                    ? "[C, H, W]: the batch dim is implicit when max_batch_size > 0"
                                    : "[N, C, H, W] when max_batch_size is 0",
                                ")"));
  }
  for (int64_t d : dims) {
    if (d == 0 || d < -1) {
      return Invalid(absl::StrCat(what, " dims ", DimsString(dims),
                                  ": each entry must be -1 (variable) or positive"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDataType(DataType type, absl::string_view what) {
  if (type == TYPE_INVALID || type == TYPE_FP32) return absl::OkStatus();
  return Invalid(
      absl::StrCat(what, " data_type ", DataType_Name(type), " is not supported; use TYPE_FP32"));
}

absl::Status CheckRuntime(const ModelConfig& config) {
  const std::string& platform = config.platform();
  if (!platform.empty() && platform != "onnxruntime_onnx" && platform != "sepconv") {
    return Invalid(absl::StrCat("platform '", platform,
                                "' is not supported; use \"onnxruntime_onnx\" or \"sepconv\""));
  }
  const std::string& backend = config.backend();
  if (!backend.empty() && backend != "onnxruntime" && backend != "sepconv") {
    return Invalid(absl::StrCat("backend '", backend,
                                "' is not supported; use \"onnxruntime\" or \"sepconv\""));
  }
  return absl::OkStatus();
}

absl::Status CheckBatching(const ModelConfig& config) {
  if (config.max_batch_size() < 0) {
    return Invalid(absl::StrCat("max_batch_size ", config.max_batch_size(), " is negative"));
  }
  if (!config.has_dynamic_batching()) return absl::OkStatus();
  if (config.max_batch_size() == 0) {
    return Invalid("dynamic_batching needs max_batch_size > 0");
  }
  for (int32_t size : config.dynamic_batching().preferred_batch_size()) {
    if (size < 1 || size > config.max_batch_size()) {
      return Invalid(absl::StrCat("dynamic_batching.preferred_batch_size ", size,
                                  " is outside 1..max_batch_size (", config.max_batch_size(), ")"));
    }
  }
  constexpr uint64_t kMaxDelayUs = uint64_t{60} * 1000 * 1000;
  if (config.dynamic_batching().max_queue_delay_microseconds() > kMaxDelayUs) {
    return Invalid(absl::StrCat("dynamic_batching.max_queue_delay_microseconds ",
                                config.dynamic_batching().max_queue_delay_microseconds(),
                                " exceeds 60 s"));
  }
  return absl::OkStatus();
}

absl::Status CheckInstancesAndVersions(const ModelConfig& config) {
  for (const ModelInstanceGroup& group : config.instance_group()) {
    if (group.kind() == ModelInstanceGroup::KIND_GPU ||
        group.kind() == ModelInstanceGroup::KIND_MODEL) {
      return Invalid(absl::StrCat("instance_group kind ",
                                  ModelInstanceGroup::Kind_Name(group.kind()),
                                  " is not supported; use KIND_CPU"));
    }
    if (group.count() < 0 || group.count() > 256) {
      return Invalid(absl::StrCat("instance_group count ", group.count(), " is outside 0..256"));
    }
  }
  const ModelVersionPolicy& policy = config.version_policy();
  if (policy.has_latest() && policy.latest().num_versions() == 0) {
    return Invalid("version_policy.latest.num_versions must be at least 1");
  }
  for (int64_t v : policy.specific().versions()) {
    if (v <= 0)
      return Invalid(absl::StrCat("version_policy.specific version ", v, " is not positive"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> OptionalPositive(bool has, int64_t value, int64_t fallback, int index,
                                         absl::string_view field) {
  if (!has) return fallback;
  if (value < 1) {
    return Invalid(
        absl::StrCat("sepconv.layers[", index, "].", field, " ", value, " must be positive"));
  }
  return value;
}

// sepconv.layers[i] (`l`) as a LayerSpec, defaults applied; an in_channels
// of 0 is the `previous` layer's out_channels (none for the first).
absl::StatusOr<LayerSpec> LayerSpecFromConfig(const SepconvLayer& l, int i,
                                              const LayerSpec* previous) {
  LayerSpec spec;
  spec.in_channels = l.in_channels();
  if (spec.in_channels == 0 && previous != nullptr) spec.in_channels = previous->out_channels;
  if (spec.in_channels < 1 || l.out_channels() < 1) {
    return Invalid(absl::StrCat("sepconv.layers[", i,
                                "] needs positive in_channels and "
                                "out_channels (got ",
                                l.in_channels(), " and ", l.out_channels(), ")"));
  }
  spec.out_channels = l.out_channels();
  ASSIGN_OR_RETURN(spec.kernel, OptionalPositive(l.has_kernel(), l.kernel(), 3, i, "kernel"));
  ASSIGN_OR_RETURN(spec.stride, OptionalPositive(l.has_stride(), l.stride(), 1, i, "stride"));
  ASSIGN_OR_RETURN(spec.dilation,
                   OptionalPositive(l.has_dilation(), l.dilation(), 1, i, "dilation"));
  ASSIGN_OR_RETURN(
      spec.depth_multiplier,
      OptionalPositive(l.has_depth_multiplier(), l.depth_multiplier(), 1, i, "depth_multiplier"));
  if (l.has_padding()) {
    if (l.padding() < 0) {
      return Invalid(absl::StrCat("sepconv.layers[", i, "].padding ", l.padding(), " is negative"));
    }
    spec.padding = l.padding();
  }
  spec.depthwise_bias = l.has_depthwise_bias() ? l.depthwise_bias() : true;
  spec.pointwise_bias = l.has_pointwise_bias() ? l.pointwise_bias() : true;
  const Activation kActs[] = {Activation::kNone, Activation::kRelu, Activation::kRelu6};
  for (int act :
       {static_cast<int>(l.depthwise_activation()), static_cast<int>(l.pointwise_activation())}) {
    if (act < 0 || act > 2) {
      return Invalid(absl::StrCat("sepconv.layers[", i, "] has unknown activation ", act));
    }
  }
  spec.depthwise_activation = kActs[l.depthwise_activation()];
  spec.pointwise_activation = kActs[l.pointwise_activation()];
  return spec;
}

// The model's own checks (ValidateModel) on `specs`, with weights of the
// right sizes (zeros) standing in for the real ones.
absl::Status CheckLayerShapes(const std::vector<LayerSpec>& specs) {
  ModelSpec shape_only;
  for (const LayerSpec& spec : specs) {
    Layer layer;
    layer.spec = spec;
    layer.weights.depthwise.resize(spec.MidChannels() * spec.kernel * spec.kernel);
    if (spec.depthwise_bias) layer.weights.depthwise_bias.resize(spec.MidChannels());
    layer.weights.pointwise.resize(spec.out_channels * spec.MidChannels());
    if (spec.pointwise_bias) layer.weights.pointwise_bias.resize(spec.out_channels);
    shape_only.layers.push_back(std::move(layer));
  }
  if (absl::Status s = ValidateModel(shape_only); !s.ok()) {
    return Invalid(absl::StrCat("sepconv: ", s.message()));
  }
  return absl::OkStatus();
}

// The configured dims of a tensor as NCHW (batch -1 when implicit).
std::vector<int64_t> AsNchw(const google::protobuf::RepeatedField<int64_t>& dims,
                            int32_t max_batch_size) {
  std::vector<int64_t> nchw(dims.begin(), dims.end());
  if (max_batch_size > 0) nchw.insert(nchw.begin(), -1);
  return nchw;
}

void SetDims(google::protobuf::RepeatedField<int64_t>* dims, const std::vector<int64_t>& nchw,
             int32_t max_batch_size) {
  dims->Clear();
  for (size_t i = max_batch_size > 0 ? 1 : 0; i < nchw.size(); ++i) dims->Add(nchw[i]);
}

// Merges stated NCHW dims with what the model implies; -1 is "unknown".
absl::StatusOr<std::vector<int64_t>> MergeDims(const std::vector<int64_t>& stated,
                                               const std::vector<int64_t>& model,
                                               absl::string_view what) {
  static const char* kAxes[] = {"N", "C", "H", "W"};
  std::vector<int64_t> merged = model;
  if (stated.empty()) return merged;
  for (int i = 0; i < 4; ++i) {
    if (stated[i] == -1) continue;
    if (i != 0 && model[i] != -1 && model[i] != stated[i]) {
      return Invalid(absl::StrCat(what, " dim ", kAxes[i], " is ", stated[i], " in the config but ",
                                  model[i], " in the model"));
    }
    merged[i] = stated[i];
  }
  return merged;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view text, absl::string_view source) {
  ModelConfig config;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", errors.error().empty() ? "0:0: parse error" : errors.error()));
  }
  return config;
}

absl::StatusOr<ModelConfig> ReadModelConfigFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open model config '", path, "'"));
  std::stringstream buffer;
  buffer << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("cannot read model config '", path, "'"));
  return ParseModelConfig(buffer.str(), path);
}

absl::Status ValidateModelConfig(const ModelConfig& config, absl::string_view model_name) {
  if (!config.name().empty() && config.name() != model_name) {
    return Invalid(absl::StrCat("name '", config.name(), "' differs from the model's folder name '",
                                model_name, "'"));
  }
  RETURN_IF_ERROR(CheckRuntime(config));
  RETURN_IF_ERROR(CheckBatching(config));
  if (config.input_size() > 1 || config.output_size() > 1) {
    return Invalid(absl::StrCat("the model has one input and one output; the config lists ",
                                config.input_size(), " and ", config.output_size()));
  }
  for (const ModelInput& input : config.input()) {
    const std::string what = absl::StrCat("input '", input.name(), "'");
    RETURN_IF_ERROR(CheckDataType(input.data_type(), what));
    if (input.format() == ModelInput::FORMAT_NHWC) {
      return Invalid(absl::StrCat(what, " format FORMAT_NHWC is not supported; tensors are NCHW"));
    }
    RETURN_IF_ERROR(CheckDims(input.dims(), config.max_batch_size(), what));
  }
  for (const ModelOutput& output : config.output()) {
    const std::string what = absl::StrCat("output '", output.name(), "'");
    RETURN_IF_ERROR(CheckDataType(output.data_type(), what));
    RETURN_IF_ERROR(CheckDims(output.dims(), config.max_batch_size(), what));
  }
  RETURN_IF_ERROR(CheckInstancesAndVersions(config));
  if (config.has_sepconv()) RETURN_IF_ERROR(LayerSpecsFromConfig(config.sepconv()).status());
  RETURN_IF_ERROR(WarmupShapes(config).status());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LayerSpec>> LayerSpecsFromConfig(const SepconvModel& sepconv) {
  if (sepconv.layers().empty()) return Invalid("sepconv has no layers");
  std::vector<LayerSpec> specs;
  for (int i = 0; i < sepconv.layers_size(); ++i) {
    ASSIGN_OR_RETURN(LayerSpec spec,
                     LayerSpecFromConfig(sepconv.layers(i), i, i > 0 ? &specs.back() : nullptr));
    if (i > 0 && spec.in_channels != specs.back().out_channels) {
      return Invalid(absl::StrCat("sepconv.layers[", i, "].in_channels ", spec.in_channels,
                                  " differs from layers[", i - 1, "].out_channels ",
                                  specs.back().out_channels));
    }
    specs.push_back(spec);
  }
  RETURN_IF_ERROR(CheckLayerShapes(specs));
  return specs;
}

absl::StatusOr<ModelConfig> CompleteModelConfig(ModelConfig config, absl::string_view model_name,
                                                const ModelSpec& spec, const ModelIo& io) {
  const int32_t mbs = config.max_batch_size();
  if (config.name().empty()) config.set_name(std::string(model_name));
  if (config.input().empty()) config.add_input()->set_name(io.input_name);
  if (config.output().empty()) config.add_output()->set_name(io.output_name);
  ModelInput& input = *config.mutable_input(0);
  ModelOutput& output = *config.mutable_output(0);
  if (input.name() != io.input_name) {
    return Invalid(
        absl::StrCat("input '", input.name(), "' is named '", io.input_name, "' in the model"));
  }
  if (output.name() != io.output_name) {
    return Invalid(
        absl::StrCat("output '", output.name(), "' is named '", io.output_name, "' in the model"));
  }
  input.set_data_type(TYPE_FP32);
  output.set_data_type(TYPE_FP32);

  std::vector<int64_t> model_in =
      io.input_dims.size() == 4 ? io.input_dims : std::vector<int64_t>{-1, -1, -1, -1};
  model_in[1] = spec.InChannels();
  std::vector<int64_t> stated_in;
  if (!input.dims().empty()) stated_in = AsNchw(input.dims(), mbs);
  ASSIGN_OR_RETURN(std::vector<int64_t> in,
                   MergeDims(stated_in, model_in, absl::StrCat("input '", input.name(), "'")));

  std::vector<int64_t> model_out =
      io.output_dims.size() == 4 ? io.output_dims : std::vector<int64_t>{-1, -1, -1, -1};
  model_out[1] = spec.OutChannels();
  if (in[2] > 0 && in[3] > 0) {
    Dims4 probe{1, in[1], in[2], in[3]};
    absl::StatusOr<Dims4> out_shape = InferOutputShape(spec, probe);
    if (!out_shape.ok()) {
      return Invalid(
          absl::StrCat("input '", input.name(), "' dims: ", out_shape.status().message()));
    }
    model_out[2] = out_shape->h;
    model_out[3] = out_shape->w;
  }
  std::vector<int64_t> stated_out;
  if (!output.dims().empty()) stated_out = AsNchw(output.dims(), mbs);
  ASSIGN_OR_RETURN(std::vector<int64_t> out,
                   MergeDims(stated_out, model_out, absl::StrCat("output '", output.name(), "'")));
  if (mbs > 0) in[0] = out[0] = -1;
  SetDims(input.mutable_dims(), in, mbs);
  SetDims(output.mutable_dims(), out, mbs);
  return config;
}

}  // namespace sepconv
