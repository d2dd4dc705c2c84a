#include "server/grpc/proto_request.h"

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/core/request_validation.h"

namespace sepconv {
namespace {

// Which typed contents field a tensor carries, other than fp32_contents.
const char* OtherTypedContents(const inference::InferTensorContents& contents) {
  if (contents.bool_contents_size() > 0) return "contents.bool_contents";
  if (contents.int_contents_size() > 0) return "contents.int_contents";
  if (contents.int64_contents_size() > 0) return "contents.int64_contents";
  if (contents.uint_contents_size() > 0) return "contents.uint_contents";
  if (contents.uint64_contents_size() > 0) return "contents.uint64_contents";
  if (contents.fp64_contents_size() > 0) return "contents.fp64_contents";
  if (contents.bytes_contents_size() > 0) return "contents.bytes_contents";
  return nullptr;
}

// The `timeout` parameter in microseconds (its sign is the core's check).
absl::StatusOr<std::optional<int64_t>> ParseTimeout(const inference::ModelInferRequest& request) {
  auto it = request.parameters().find(kTimeoutParameter);
  if (it == request.parameters().end()) return std::optional<int64_t>();
  const inference::InferParameter& p = it->second;
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) return p.int64_param();
  if (p.parameter_choice_case() == inference::InferParameter::kUint64Param &&
      p.uint64_param() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(p.uint64_param());
  }
  return absl::InvalidArgumentError("parameter 'timeout' must be an int64_param (microseconds)");
}

}  // namespace

absl::StatusOr<InferRequest> ParseModelInferRequest(const inference::ModelInferRequest& request) {
  if (request.inputs_size() > 0 && request.raw_input_contents_size() > request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                     " entries; expected one per input (", request.inputs_size(), ")"));
  }
  absl::StatusOr<std::optional<int64_t>> timeout = ParseTimeout(request);
  if (!timeout.ok()) return timeout.status();
  InferRequest parsed;
  parsed.model_name = request.model_name();
  parsed.model_version = request.model_version();
  parsed.id = request.id();
  parsed.timeout_us = *timeout;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& tensor = request.inputs(i);
    InferInput& input = parsed.inputs.emplace_back();
    input.name = tensor.name();
    input.datatype = tensor.datatype();
    input.shape.assign(tensor.shape().begin(), tensor.shape().end());
    input.raw_field = absl::StrCat("raw_input_contents[", i, "]");
    input.typed_field = "contents.fp32_contents";
    if (i < request.raw_input_contents_size()) input.raw = request.raw_input_contents(i);
    const auto& fp32 = tensor.contents().fp32_contents();
    if (!fp32.empty()) input.fp32 = absl::Span<const float>(fp32.data(), fp32.size());
    if (const char* other = OtherTypedContents(tensor.contents())) input.other_typed_data = other;
  }
  for (const auto& output : request.outputs()) parsed.requested_outputs.push_back(output.name());
  return parsed;
}

absl::StatusOr<float*> WriteInferResponse(const InferResult& result, const std::string& id,
                                          inference::ModelInferResponse* response) {
  response->Clear();
  response->set_model_name(result.model_name);
  response->set_model_version(result.model_version);
  response->set_id(id);
  auto* output = response->add_outputs();
  output->set_name(kOutputName);
  output->set_datatype(kDatatypeFp32);
  const Dims4& d = result.output_dims;
  for (int64_t dim : {d.n, d.c, d.h, d.w}) output->add_shape(dim);

  const int64_t elements = d.n * d.c * d.h * d.w;
  if (!result.raw) {
    if (elements > std::numeric_limits<int>::max()) {
      return absl::ResourceExhaustedError(
          "output too large for contents.fp32_contents; use raw_input_contents");
    }
    auto* values = output->mutable_contents()->mutable_fp32_contents();
    values->Resize(static_cast<int>(elements), 0.0f);
    return values->mutable_data();
  }
  std::string* bytes = response->add_raw_output_contents();
  bytes->resize(static_cast<size_t>(elements) * sizeof(float));
  if (reinterpret_cast<uintptr_t>(bytes->data()) % alignof(float) != 0) {
    return absl::InternalError("raw_output_contents buffer is not float-aligned");
  }
  return reinterpret_cast<float*>(bytes->data());
}

OutputAllocator ResponseAllocator(const inference::ModelInferRequest& request,
                                  inference::ModelInferResponse* response) {
  return [&request, response](const InferResult& result) {
    return WriteInferResponse(result, request.id(), response);
  };
}

}  // namespace sepconv
