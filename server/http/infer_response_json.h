#ifndef SEPCONV_SERVER_HTTP_INFER_RESPONSE_JSON_H_
#define SEPCONV_SERVER_HTTP_INFER_RESPONSE_JSON_H_

// Builds the body of a KServe v2 REST infer response, as Triton writes it:
//   JSON:   {"model_name":..,"model_version":..,"id":..,"outputs":[{"name":
//           "output","datatype":"FP32","shape":[n,c,h,w],"data":[...]}]},
//           Content-Type application/json;
//   binary: the same header with "parameters":{"binary_data_size":B} instead
//           of "data", followed by the B output bytes (little-endian floats);
//           Content-Type application/octet-stream and the header's length in
//           Inference-Header-Content-Length.
//   shared memory (the request asked for the output in a region): the same
//           header without "data" or "parameters", as pure JSON.
// Floats are written as the shortest decimal that reads back as the same
// float (std::to_chars), so a JSON answer carries the exact bits.
//
// The output is written in place: Allocate (the core's OutputAllocator)
// returns where the floats go; in binary mode that is the body itself, right
// after the header (padded with spaces to a multiple of 4 bytes so that the
// floats are aligned), so nothing is copied. Thread-compatible.

#include <cstddef>
#include <string>
#include <vector>

#include "server/core/infer_request.h"

namespace sepconv {

class InferResponseBuilder {
 public:
  // `id` is the request's id (echoed when non-empty); `binary` chooses the
  // binary tensor data extension for the output.
  InferResponseBuilder(std::string id, bool binary);

  // Sizes the response for `result` and returns where its
  // n*c*h*w output floats go (valid until Finish or destruction); nullptr
  // when the output goes to shared memory.
  float* Allocate(const InferResult& result);

  // The body once the output has been written; call once, after Allocate.
  std::string Finish();

  // Inference-Header-Content-Length for a binary body (0: pure JSON).
  size_t header_length() const { return binary_body() ? header_length_ : 0; }
  const char* content_type() const {
    return binary_body() ? "application/octet-stream" : "application/json";
  }

 private:
  // What the output entry carries.
  enum class Data { kJson, kBinary, kNone };
  bool binary_body() const { return binary_ && !result_.output_in_shared_memory; }
  std::string Header(Data data) const;

  const std::string id_;
  const bool binary_;
  InferResult result_;
  size_t header_length_ = 0;
  std::string body_;           // binary: header + output bytes
  std::vector<float> floats_;  // JSON: the output until Finish
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_INFER_RESPONSE_JSON_H_
