#ifndef SEPCONV_SERVER_CORE_INPUT_TENSOR_H_
#define SEPCONV_SERVER_CORE_INPUT_TENSOR_H_

// A validated request's input as dense NCHW floats without a copy where
// possible: borrowed from the frontend's buffer (raw little-endian bytes
// that are float-aligned, or typed floats), copied only when the raw bytes
// are misaligned. Wire tensors are little-endian; so is every host we build
// for (checked at compile time). Thread-compatible: the frontend's buffer
// must outlive the InputTensor and must not be modified meanwhile.

#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/core/infer_request.h"
#include "server/core/request_validation.h"

namespace sepconv {

// Move-only so that the pointer never dangles (a move keeps the data where
// it is).
class InputTensor {
 public:
  InputTensor() = default;
  InputTensor(InputTensor&&) = default;
  InputTensor& operator=(InputTensor&&) = default;
  InputTensor(const InputTensor&) = delete;
  InputTensor& operator=(const InputTensor&) = delete;

  const float* data() const { return owned_.empty() ? borrowed_ : owned_.data(); }
  // Whether the data had to be copied (for tests).
  bool copied() const { return !owned_.empty(); }

 private:
  friend InputTensor InputFromRawBytes(absl::string_view bytes);
  friend InputTensor InputFromFloats(absl::Span<const float> values);
  const float* borrowed_ = nullptr;
  std::vector<float> owned_;
};

// Little-endian fp32 bytes (a multiple of 4) as floats: borrowed when
// float-aligned, copied otherwise.
InputTensor InputFromRawBytes(absl::string_view bytes);
// Typed floats, borrowed.
InputTensor InputFromFloats(absl::Span<const float> values);

// The input of a request that ValidateInferRequest accepted as `validated`.
InputTensor InputFromRequest(const InferRequest& request, const ValidatedInfer& validated);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_INPUT_TENSOR_H_
