#include "server/core/request_validation.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sepconv {
namespace {

constexpr const char* kDimNames[] = {"N", "C", "H", "W"};
constexpr int64_t kFloatBytes = static_cast<int64_t>(sizeof(float));

absl::Status CheckShape(const InferInput& input, const ModelSpec& model, int64_t* elements) {
  const std::vector<int64_t>& shape = input.shape;
  if (shape.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "' has rank ",
                                                   shape.size(), " (shape ", ShapeString(shape),
                                                   "); expected rank 4 (NCHW)"));
  }
  int64_t product = 1;
  for (int i = 0; i < 4; ++i) {
    if (shape[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name, "' shape ", ShapeString(shape), ": dim ", i, " (",
                       kDimNames[i], ") is ", shape[i], "; every dim must be positive"));
    }
    if (__builtin_mul_overflow(product, shape[i], &product)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "' shape ",
                                                     ShapeString(shape),
                                                     " has more elements than int64 can hold"));
    }
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(product, kFloatBytes, &bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name, "' shape ", ShapeString(shape), ": its byte size overflows int64"));
  }
  if (shape[1] != model.InChannels()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name, "' shape ", ShapeString(shape), " has ", shape[1],
                     " channels (dim 1, C); the model expects ", model.InChannels()));
  }
  *elements = product;
  return absl::OkStatus();
}

// The shared-memory parameters of `what` as a SharedMemoryRef, nullopt
// when none are given.
absl::StatusOr<std::optional<SharedMemoryRef>> SharedMemoryFromParams(const SharedMemoryParams& p,
                                                                      const std::string& what) {
  if (!p.given()) return std::optional<SharedMemoryRef>();
  if (!p.region.has_value() || !p.byte_size.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": parameters '", kShmRegionParameter, "' and '", kShmByteSizeParameter,
                     "' go together (and '", kShmOffsetParameter, "' only with them)"));
  }
  const int64_t offset = p.offset.value_or(0);
  if (p.region->empty() || offset < 0 || *p.byte_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": shared memory needs a region name and a non-negative offset and byte size (got '",
        *p.region, "', ", offset, ", ", *p.byte_size, ")"));
  }
  return SharedMemoryRef{*p.region, static_cast<uint64_t>(offset),
                         static_cast<uint64_t>(*p.byte_size)};
}

absl::Status CheckContents(const InferInput& input, int64_t elements, bool* raw) {
  if (!input.other_typed_data.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "' carries ",
                                                   input.other_typed_data, "; an FP32 input uses ",
                                                   input.typed_field));
  }
  const bool has_typed = input.fp32.has_value() && !input.fp32->empty();
  const bool has_raw = input.raw.has_value();
  if (input.shared_memory.given()) {
    if (has_raw || has_typed) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name, "' is given both in shared memory and in ",
                       has_raw ? input.raw_field : input.typed_field, "; use one of them"));
    }
    *raw = true;  // an output not in shared memory goes out as raw bytes
    return absl::OkStatus();
  }
  if (has_raw && has_typed) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "' is given both in ",
                                                   input.raw_field, " and in ", input.typed_field,
                                                   "; use one of them"));
  }
  if (has_raw) {
    const int64_t bytes = static_cast<int64_t>(input.raw->size());
    if (bytes != elements * kFloatBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(input.raw_field, " has ", bytes, " bytes; input '", input.name, "' shape ",
                       ShapeString(input.shape), " needs ", elements,
                       " FP32 elements = ", elements * kFloatBytes, " bytes"));
    }
    *raw = true;
    return absl::OkStatus();
  }
  const int64_t typed = input.fp32.has_value() ? static_cast<int64_t>(input.fp32->size()) : 0;
  if (typed != elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name, "' ", input.typed_field, " has ", typed,
                     " elements; shape ", ShapeString(input.shape), " needs ", elements,
                     has_typed ? "" : absl::StrCat(" (no ", input.raw_field, " given either)")));
  }
  *raw = false;
  return absl::OkStatus();
}

// The request's one input, if it is the model's by name and datatype.
absl::StatusOr<const InferInput*> TheInput(const InferRequest& request) {
  if (request.inputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request has no inputs; the model expects input '", kInputName, "'"));
  }
  if (request.inputs.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("request has ", request.inputs.size(),
                                                   " inputs; the model has exactly one, '",
                                                   kInputName, "'"));
  }
  const InferInput& input = request.inputs[0];
  if (input.name != kInputName) {
    return absl::InvalidArgumentError(absl::StrCat("unknown input name '", input.name,
                                                   "'; the model's input is '", kInputName, "'"));
  }
  if (input.datatype != kDatatypeFp32) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "' has datatype '",
                                                   input.datatype, "'; expected ", kDatatypeFp32));
  }
  return &input;
}

// The requested outputs: the model's, each at most once; its shared-memory
// placement, if one asked for it, into `shared_memory`.
absl::Status CheckRequestedOutputs(const InferRequest& request,
                                   std::optional<SharedMemoryRef>* shared_memory) {
  for (size_t i = 0; i < request.requested_outputs.size(); ++i) {
    const RequestedOutput& output = request.requested_outputs[i];
    for (size_t j = 0; j < i; ++j) {
      if (request.requested_outputs[j].name == output.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("output '", output.name, "' is requested more than once"));
      }
    }
    if (output.name != kOutputName) {
      return absl::InvalidArgumentError(absl::StrCat("requested output '", output.name,
                                                     "' does not exist; the model's output is '",
                                                     kOutputName, "'"));
    }
    absl::StatusOr<std::optional<SharedMemoryRef>> shm =
        SharedMemoryFromParams(output.shared_memory, absl::StrCat("output '", output.name, "'"));
    if (!shm.ok()) return shm.status();
    if (shm->has_value()) *shared_memory = **shm;
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<ValidatedInfer> ValidateInferRequest(const InferRequest& request,
                                                    const ModelSpec& model) {
  absl::StatusOr<const InferInput*> the_input = TheInput(request);
  if (!the_input.ok()) return the_input.status();
  const InferInput& input = **the_input;
  ValidatedInfer result;
  if (absl::Status s = CheckRequestedOutputs(request, &result.output_shared_memory); !s.ok()) {
    return s;
  }
  int64_t elements = 0;
  if (absl::Status s = CheckShape(input, model, &elements); !s.ok()) return s;
  if (absl::Status s = CheckContents(input, elements, &result.raw); !s.ok()) return s;
  absl::StatusOr<std::optional<SharedMemoryRef>> input_shm =
      SharedMemoryFromParams(input.shared_memory, absl::StrCat("input '", input.name, "'"));
  if (!input_shm.ok()) return input_shm.status();
  result.input_shared_memory = *std::move(input_shm);
  if (result.input_shared_memory.has_value() &&
      result.input_shared_memory->byte_size != static_cast<uint64_t>(elements * kFloatBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name, "': ", kShmByteSizeParameter, " is ",
                     result.input_shared_memory->byte_size, "; shape ", ShapeString(input.shape),
                     " needs ", elements, " FP32 elements = ", elements * kFloatBytes, " bytes"));
  }
  if (request.timeout_us.has_value()) {
    if (*request.timeout_us < 0) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", kTimeoutParameter, "' is ",
                                                     *request.timeout_us,
                                                     "; it must be >= 0 microseconds"));
    }
    result.timeout = absl::Microseconds(*request.timeout_us);
  }

  const std::vector<int64_t>& shape = input.shape;
  result.input_dims = Dims4{shape[0], shape[1], shape[2], shape[3]};
  absl::StatusOr<Dims4> output = InferOutputShape(model, result.input_dims);
  if (!output.ok()) {
    return absl::Status(output.status().code(),
                        absl::StrCat("input '", input.name, "' shape ", ShapeString(shape), ": ",
                                     output.status().message()));
  }
  result.output_dims = *output;
  return result;
}

}  // namespace sepconv
