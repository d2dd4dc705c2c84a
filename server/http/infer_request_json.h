#ifndef SEPCONV_SERVER_HTTP_INFER_REQUEST_JSON_H_
#define SEPCONV_SERVER_HTTP_INFER_REQUEST_JSON_H_

// Parses the body of a KServe v2 REST infer request
// (POST /v2/models/{m}[/versions/{v}]/infer) into an InferRequest, with
// Triton's binary tensor data extension: when the request carries an
// `Inference-Header-Content-Length: N` header, the body is N bytes of JSON
// followed by the inputs' bytes, in the order of the inputs that have
// `"parameters": {"binary_data_size": S}`; their sizes must add up to the
// rest of the body exactly.
//
// JSON is parsed with simdjson's On-Demand API (Debian's libsimdjson-dev):
// the document is indexed with SIMD instructions, then read forward once,
// and the numbers of "data" are converted straight into the float buffer the
// request owns, each with fast_float (libfast-float-dev) from its decimal to
// the nearest float, so that a float's shortest decimal reads back to that
// float. Values the parser does not read (unknown fields) are skipped by
// their brackets, not validated. The binary extension's tensors are views
// into the body, never copied. Validation of what the model needs (names,
// datatype, shape against the data) is the core's; this parser checks only
// the wire: JSON syntax and the types of the fields it reads, the binary
// sizes against the body. When a field appears twice, the last one counts.
// Every error is INVALID_ARGUMENT with a message
// naming the field. Stateless functions; thread-safe.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/infer_request.h"

namespace sepconv {

// A parsed request and the buffers its views point into. Not movable (the
// views point into its members); held by unique_ptr.
struct RestInferRequest {
  RestInferRequest() = default;
  RestInferRequest(const RestInferRequest&) = delete;
  RestInferRequest& operator=(const RestInferRequest&) = delete;

  InferRequest request;                       // inputs view into `body` / `json_data`
  std::string body;                           // the request's body (modified by in-situ parsing)
  std::vector<std::vector<float>> json_data;  // each JSON "data", flattened
  // Answer the output as binary tensor data (the request's
  // "binary_data_output" parameter, overridden by the output's own
  // "binary_data" parameter).
  bool binary_output = false;
};

// The value of an Inference-Header-Content-Length header: a decimal byte
// count. INVALID_ARGUMENT when it is not one.
absl::StatusOr<size_t> ParseHeaderLength(absl::string_view value);

// Parses `body` for the model and version of the URL (`version` empty: the
// latest). `header_length` is the Inference-Header-Content-Length, nullopt
// when the request had none (the whole body is JSON).
absl::StatusOr<std::unique_ptr<RestInferRequest>> ParseInferRequest(
    std::string body, std::optional<size_t> header_length, absl::string_view model_name,
    absl::string_view model_version);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_INFER_REQUEST_JSON_H_
