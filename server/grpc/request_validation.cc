#include "server/grpc/request_validation.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sepconv {
namespace {

constexpr const char* kDimNames[] = {"N", "C", "H", "W"};

// Which typed contents field a tensor carries, other than fp32_contents.
const char* OtherTypedContents(const inference::InferTensorContents& contents) {
  if (contents.bool_contents_size() > 0) return "bool_contents";
  if (contents.int_contents_size() > 0) return "int_contents";
  if (contents.int64_contents_size() > 0) return "int64_contents";
  if (contents.uint_contents_size() > 0) return "uint_contents";
  if (contents.uint64_contents_size() > 0) return "uint64_contents";
  if (contents.fp64_contents_size() > 0) return "fp64_contents";
  if (contents.bytes_contents_size() > 0) return "bytes_contents";
  return nullptr;
}

absl::Status CheckShape(const inference::ModelInferRequest::InferInputTensor& input,
                        const ModelSpec& model, int64_t* elements) {
  const auto& shape = input.shape();
  if (shape.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' has rank ",
                                                   shape.size(), " (shape ", ShapeString(shape),
                                                   "); expected rank 4 (NCHW)"));
  }
  int64_t product = 1;
  for (int i = 0; i < 4; ++i) {
    if (shape[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "' shape ", ShapeString(shape), ": dim ", i, " (",
                       kDimNames[i], ") is ", shape[i], "; every dim must be positive"));
    }
    if (__builtin_mul_overflow(product, shape[i], &product)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' shape ",
                                                     ShapeString(shape),
                                                     " has more elements than int64 can hold"));
    }
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(product, static_cast<int64_t>(sizeof(float)), &bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' shape ",
                                                   ShapeString(shape),
                                                   ": its byte size overflows int64"));
  }
  if (shape[1] != model.InChannels()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(), "' shape ", ShapeString(shape), " has ", shape[1],
                     " channels (dim 1, C); the model expects ", model.InChannels()));
  }
  *elements = product;
  return absl::OkStatus();
}

absl::Status CheckContents(const inference::ModelInferRequest& request, int64_t elements,
                           bool* raw) {
  const auto& input = request.inputs(0);
  const auto& contents = input.contents();
  if (const char* other = OtherTypedContents(contents)) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' carries contents.",
                                                   other, "; an FP32 input uses fp32_contents"));
  }
  const bool has_typed = contents.fp32_contents_size() > 0;
  if (request.raw_input_contents_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("raw_input_contents has ",
                                                   request.raw_input_contents_size(),
                                                   " entries; expected one per input (1)"));
  }
  const bool has_raw = request.raw_input_contents_size() == 1;
  if (has_raw && has_typed) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(),
                     "' is given both in raw_input_contents and in contents.fp32_contents; "
                     "use one of them"));
  }
  if (has_raw) {
    const int64_t bytes = static_cast<int64_t>(request.raw_input_contents(0).size());
    if (bytes != elements * static_cast<int64_t>(sizeof(float))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents[0] has ", bytes, " bytes; input '", input.name(), "' shape ",
          ShapeString(input.shape()), " needs ", elements,
          " FP32 elements = ", elements * static_cast<int64_t>(sizeof(float)), " bytes"));
    }
    *raw = true;
    return absl::OkStatus();
  }
  if (contents.fp32_contents_size() != elements) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(), "' contents.fp32_contents has ", contents.fp32_contents_size(),
        " elements; shape ", ShapeString(input.shape()), " needs ", elements,
        has_typed ? "" : " (no raw_input_contents given either)"));
  }
  *raw = false;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<absl::Duration>> ParseTimeout(
    const inference::ModelInferRequest& request) {
  auto it = request.parameters().find(kTimeoutParameter);
  if (it == request.parameters().end()) return std::optional<absl::Duration>();
  const inference::InferParameter& p = it->second;
  int64_t micros = -1;
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    micros = p.int64_param();
  } else if (p.parameter_choice_case() == inference::InferParameter::kUint64Param &&
             p.uint64_param() <= static_cast<uint64_t>(INT64_MAX)) {
    micros = static_cast<int64_t>(p.uint64_param());
  } else {
    return absl::InvalidArgumentError("parameter 'timeout' must be an int64_param (microseconds)");
  }
  if (micros < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter 'timeout' is ", micros, "; it must be >= 0 microseconds"));
  }
  return std::optional<absl::Duration>(absl::Microseconds(micros));
}

}  // namespace

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<ValidatedInfer> ValidateInferRequest(const inference::ModelInferRequest& request,
                                                    const ModelSpec& model) {
  if (request.inputs_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("request has no inputs; the model expects input '", kInputName, "'"));
  }
  if (request.inputs_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("request has ", request.inputs_size(),
                                                   " inputs; the model has exactly one, '",
                                                   kInputName, "'"));
  }
  const auto& input = request.inputs(0);
  if (input.name() != kInputName) {
    return absl::InvalidArgumentError(absl::StrCat("unknown input name '", input.name(),
                                                   "'; the model's input is '", kInputName, "'"));
  }
  if (input.datatype() != kDatatypeFp32) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' has datatype '",
                                                   input.datatype(), "'; expected ",
                                                   kDatatypeFp32));
  }
  for (const auto& output : request.outputs()) {
    if (output.name() != kOutputName) {
      return absl::InvalidArgumentError(absl::StrCat("requested output '", output.name(),
                                                     "' does not exist; the model's output is '",
                                                     kOutputName, "'"));
    }
  }
  ValidatedInfer result;
  int64_t elements = 0;
  if (absl::Status s = CheckShape(input, model, &elements); !s.ok()) return s;
  if (absl::Status s = CheckContents(request, elements, &result.raw); !s.ok()) return s;
  auto timeout = ParseTimeout(request);
  if (!timeout.ok()) return timeout.status();
  result.timeout = *timeout;

  const auto& shape = input.shape();
  result.input_dims = Dims4{shape[0], shape[1], shape[2], shape[3]};
  absl::StatusOr<Dims4> output = InferOutputShape(model, result.input_dims);
  if (!output.ok()) {
    return absl::Status(output.status().code(),
                        absl::StrCat("input '", input.name(), "' shape ", ShapeString(shape), ": ",
                                     output.status().message()));
  }
  result.output_dims = *output;
  return result;
}

}  // namespace sepconv
