#include "server/core/input_tensor.h"

#include <cstdint>
#include <cstring>

namespace sepconv {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "KServe raw tensors are little-endian; a big-endian host needs byte swapping");

bool IsFloatAligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % alignof(float) == 0; }

}  // namespace

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

InputTensor InputFromFloats(absl::Span<const float> values) {
  InputTensor tensor;
  tensor.borrowed_ = values.data();
  return tensor;
}

InputTensor InputFromRequest(const InferRequest& request, const ValidatedInfer& validated) {
  const InferInput& input = request.inputs[0];
  if (validated.raw) return InputFromRawBytes(*input.raw);
  return InputFromFloats(*input.fp32);
}

}  // namespace sepconv
