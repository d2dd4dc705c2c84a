#ifndef SEPCONV_SERVER_GRPC_TENSOR_CONVERSION_H_
#define SEPCONV_SERVER_GRPC_TENSOR_CONVERSION_H_

// Moves tensors between KServe v2 messages and the engine without copies
// where possible: the input is read straight from the request's
// raw_input_contents or fp32_contents (copied only when the bytes are not
// float-aligned), and the output is written straight into the response's
// raw_output_contents string or fp32_contents field. Wire tensors are
// little-endian; so is every host we build for (checked at compile time).
// Thread-compatible: the request and response must outlive what these
// functions return and must not be modified meanwhile.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpc_service.pb.h"
#include "server/grpc/request_validation.h"

namespace sepconv {

// A validated request's input as dense NCHW floats: borrowed from the request
// or, when misaligned, an owned copy. Move-only so the pointer never dangles.
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
  friend InputTensor InputFromRequest(const inference::ModelInferRequest&, const ValidatedInfer&);
  friend InputTensor InputFromRawBytes(absl::string_view bytes);
  const float* borrowed_ = nullptr;
  std::vector<float> owned_;
};

// The input of a request that ValidateInferRequest accepted as `validated`.
InputTensor InputFromRequest(const inference::ModelInferRequest& request,
                             const ValidatedInfer& validated);

// Little-endian fp32 bytes (a multiple of 4) as floats: borrowed when
// float-aligned, copied otherwise.
InputTensor InputFromRawBytes(absl::string_view bytes);

// Fills `response` (model name and version, request id, the output tensor's
// name, datatype and shape) and sizes its output storage in the form the
// request used; returns where the output's floats go (valid until the
// response is modified or destroyed).
absl::StatusOr<float*> PrepareInferResponse(const inference::ModelInferRequest& request,
                                            const ValidatedInfer& validated,
                                            const std::string& model_name,
                                            const std::string& model_version,
                                            inference::ModelInferResponse* response);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_TENSOR_CONVERSION_H_
