#ifndef SEPCONV_CLIENT_INTERNAL_REST_CODEC_H_
#define SEPCONV_CLIENT_INTERNAL_REST_CODEC_H_

// KServe v2 REST bodies from and to the gRPC messages the clients share
// (infer_message.h, proto_convert.h), so that the REST client checks and
// converts answers with the gRPC client's code.
//
// Infer requests carry the input as Triton's binary tensor data (a JSON
// header, then the raw little-endian bytes; the header's length in the
// Inference-Header-Content-Length header) when the request has
// raw_input_contents, or as JSON "data" when it has fp32_contents. Floats
// travel exactly: written as their shortest round-trip decimal
// (std::to_chars), answers' numbers read from their text with
// std::from_chars<float>, never through a double.
// Pure functions; thread-safe.

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpc_service.pb.h"

namespace sepconv::client::internal {

inline constexpr char kHeaderLengthHeader[] = "Inference-Header-Content-Length";
inline constexpr char kJsonType[] = "application/json";
inline constexpr char kBinaryType[] = "application/octet-stream";

struct RestBody {
  std::string content;
  // Inference-Header-Content-Length; nullopt: the whole body is JSON.
  std::optional<size_t> header_length;
};

// `request` as a REST infer body. With `binary_output`, asks for the outputs
// as binary tensor data (else JSON "data"). The model, version and id are
// the URL's and "id".
RestBody EncodeInferRequest(const inference::ModelInferRequest& request, bool binary_output);

// A REST infer answer as the gRPC one: binary outputs in raw_output_contents,
// JSON "data" in fp32_contents. With `skipped_raw_bytes`, binary outputs are
// not copied: the first one's size goes there (as ParseInferResponseHeader
// gives it for gRPC; ReadOutput takes it). DATA_LOSS for a body that is not
// a valid answer (JSON, types, binary sizes).
absl::StatusOr<inference::ModelInferResponse> DecodeInferResponse(
    std::string body, std::optional<size_t> header_length,
    std::optional<int64_t>* skipped_raw_bytes = nullptr);

// The status of an HTTP answer that is not 200: the code from the HTTP
// status (the inverse of sepconv-server's and Triton's mapping), the message
// from the KServe error body {"error": "..."} (else the body itself).
absl::Status StatusFromHttp(int http_status, absl::string_view body);
absl::StatusCode CodeFromHttpStatus(int http_status);

// Parses a JSON body into `message` (protobuf's JSON mapping; unknown
// fields ignored, as gRPC ignores them). DATA_LOSS when it does not fit.
absl::Status ParseJsonMessage(absl::string_view json, google::protobuf::Message* message);

// The system shared-memory status answer (a JSON array of regions).
absl::StatusOr<inference::SystemSharedMemoryStatusResponse> ParseSharedMemoryStatus(
    absl::string_view json);

// The register body {"key", "offset", "byte_size"} of `request`.
std::string RegisterBody(const inference::SystemSharedMemoryRegisterRequest& request);

// "/v2/models/<model>[/versions/<version>]".
std::string ModelPath(absl::string_view model, absl::string_view version);

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_REST_CODEC_H_
