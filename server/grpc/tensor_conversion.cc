#include "server/grpc/tensor_conversion.h"

#include <cstring>
#include <limits>

#include "absl/status/status.h"

namespace sepconv {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "KServe raw tensors are little-endian; a big-endian host needs byte swapping");

bool IsFloatAligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % alignof(float) == 0; }

int64_t Elements(const Dims4& d) { return d.n * d.c * d.h * d.w; }

}  // namespace

InputTensor InputFromRequest(const inference::ModelInferRequest& request,
                             const ValidatedInfer& validated) {
  InputTensor tensor;
  if (!validated.raw) {
    tensor.borrowed_ = request.inputs(0).contents().fp32_contents().data();
    return tensor;
  }
  return InputFromRawBytes(request.raw_input_contents(0));
}

InputTensor InputFromRawBytes(absl::string_view bytes) {
  InputTensor tensor;
  if (IsFloatAligned(bytes.data())) {
    tensor.borrowed_ = reinterpret_cast<const float*>(bytes.data());
  } else {
    tensor.owned_.resize(bytes.size() / sizeof(float));
    std::memcpy(tensor.owned_.data(), bytes.data(), tensor.owned_.size() * sizeof(float));
  }
  return tensor;
}

absl::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const ValidatedInfer& validated,
                                            const std::string& model_name,
                                            const std::string& model_version,
                                            inference::ModelInferResponse* response) {
  response->set_model_name(model_name);
  response->set_model_version(model_version);
  response->set_id(request.id());
  auto* output = response->add_outputs();
  output->set_name(kOutputName);
  output->set_datatype(kDatatypeFp32);
  const Dims4& d = validated.output_dims;
  for (int64_t dim : {d.n, d.c, d.h, d.w}) output->add_shape(dim);

  const int64_t elements = Elements(d);
  if (!validated.raw) {
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
  if (!IsFloatAligned(bytes->data())) {
    return absl::InternalError("raw_output_contents buffer is not float-aligned");
  }
  return reinterpret_cast<float*>(bytes->data());
}

}  // namespace sepconv
