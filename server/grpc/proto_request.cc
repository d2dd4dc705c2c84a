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

// A parameter's int64 value (int64_param, or a uint64_param that fits).
absl::StatusOr<int64_t> Int64Parameter(const inference::InferParameter& p, absl::string_view name,
                                       const std::string& what) {
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) return p.int64_param();
  if (p.parameter_choice_case() == inference::InferParameter::kUint64Param &&
      p.uint64_param() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(p.uint64_param());
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": parameter '", name, "' must be an int64_param"));
}

// Triton's shared-memory parameters of one tensor, type-checked.
absl::StatusOr<SharedMemoryParams> ParseSharedMemory(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
    const std::string& what) {
  SharedMemoryParams shm;
  if (auto it = parameters.find(kShmRegionParameter); it != parameters.end()) {
    if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": parameter '", kShmRegionParameter, "' must be a string_param"));
    }
    shm.region = it->second.string_param();
  }
  for (auto [name, field] : {std::pair{kShmOffsetParameter, &shm.offset},
                             std::pair{kShmByteSizeParameter, &shm.byte_size}}) {
    auto it = parameters.find(name);
    if (it == parameters.end()) continue;
    absl::StatusOr<int64_t> value = Int64Parameter(it->second, name, what);
    if (!value.ok()) return value.status();
    *field = *value;
  }
  return shm;
}

}  // namespace

absl::StatusOr<InferRequest> ParseModelInferRequest(const inference::ModelInferRequest& request) {
  if (request.inputs_size() > 0 && request.raw_input_contents_size() > request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                     " entries; expected one per input (", request.inputs_size(), ")"));
  }
  InferRequest parsed;
  if (auto it = request.parameters().find(kTimeoutParameter); it != request.parameters().end()) {
    absl::StatusOr<int64_t> timeout = Int64Parameter(it->second, kTimeoutParameter, "request");
    if (!timeout.ok()) return timeout.status();
    parsed.timeout_us = *timeout;  // microseconds; its sign is the core's check
  }
  parsed.model_name = request.model_name();
  parsed.model_version = request.model_version();
  parsed.id = request.id();
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
    absl::StatusOr<SharedMemoryParams> shm =
        ParseSharedMemory(tensor.parameters(), absl::StrCat("input '", tensor.name(), "'"));
    if (!shm.ok()) return shm.status();
    input.shared_memory = *std::move(shm);
  }
  for (const auto& output : request.outputs()) {
    RequestedOutput& wanted = parsed.requested_outputs.emplace_back();
    wanted.name = output.name();
    absl::StatusOr<SharedMemoryParams> shm =
        ParseSharedMemory(output.parameters(), absl::StrCat("output '", output.name(), "'"));
    if (!shm.ok()) return shm.status();
    wanted.shared_memory = *std::move(shm);
  }
  return parsed;
}

int64_t WriteResponseHeader(const InferResult& result, const std::string& id,
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
  return d.n * d.c * d.h * d.w;
}

absl::StatusOr<float*> WriteInferResponse(const InferResult& result, const std::string& id,
                                          inference::ModelInferResponse* response) {
  const int64_t elements = WriteResponseHeader(result, id, response);
  if (result.output_in_shared_memory) return nullptr;  // the values are in the client's region
  if (!result.raw) {
    if (elements > std::numeric_limits<int>::max()) {
      return absl::ResourceExhaustedError(
          "output too large for contents.fp32_contents; use raw_input_contents");
    }
    auto* values = response->mutable_outputs(0)->mutable_contents()->mutable_fp32_contents();
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
