#ifndef SEPCONV_CLIENT_INTERNAL_INFER_MESSAGE_H_
#define SEPCONV_CLIENT_INTERNAL_INFER_MESSAGE_H_

// The ModelInfer messages both clients build and check: the gRPC client
// sends them as they are, the REST client encodes them as KServe v2 REST
// bodies and decodes REST answers into them, so that every check of a
// request's options and of an answer against its own shape is written once.
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/tensor.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "grpc_service.pb.h"

namespace sepconv::client::internal {

// The request for `input` with `options`: the input raw (typed with
// options.typed) or in shared memory, the output requested in shared memory
// if asked. INVALID_ARGUMENT for an input that does not match its shape or
// placements that make no sense.
absl::StatusOr<inference::ModelInferRequest> BuildRequest(const std::string& model,
                                                          const std::string& version,
                                                          const Tensor& input,
                                                          const InferOptions& options);

// Checks the first output of `response` against its own shape: its values
// raw (in the first raw_output_contents) or typed; or, for an output
// requested in shared memory (`shm_bytes`: the placement's size), no values
// and at most `shm_bytes` bytes. When `values` is given, copies the values
// out of the response (not for shared memory: they are in the region).
// `skipped_raw_bytes`: the response was parsed without its raw contents
// (ParseInferResponseHeader), and this is the size of the first one, if any
// (`values` must then be null). DATA_LOSS for an answer that does not hold
// together.
absl::Status ReadOutput(const inference::ModelInferResponse& response,
                        std::optional<int64_t> shm_bytes, std::vector<int64_t>* shape,
                        int64_t* bytes, std::vector<float>* values,
                        std::optional<int64_t> skipped_raw_bytes = std::nullopt);

// Parses a serialized ModelInferResponse from `in` into `header` without its
// raw_output_contents, whose bytes are skipped, never copied; sets
// `raw_bytes` to the first one's size (nullopt: none). For answers of which
// only shape and size are wanted (InferAsync): copying a 51 MB answer into a
// fresh string costs the client more than receiving it (12,500 page faults).
// DATA_LOSS for bytes that are not such a message.
absl::Status ParseInferResponseHeader(google::protobuf::io::ZeroCopyInputStream& in,
                                      inference::ModelInferResponse* header,
                                      std::optional<int64_t>* raw_bytes);

// The same for a ModelStreamInferResponse (a streamed answer): its
// error_message, and its infer_response without the raw values.
absl::Status ParseStreamResponseHeader(google::protobuf::io::ZeroCopyInputStream& in,
                                       std::string* error_message,
                                       inference::ModelInferResponse* header,
                                       std::optional<int64_t>* raw_bytes);

// The size of the output placement of `options`, if any.
std::optional<int64_t> OutputShmBytes(const InferOptions& options);

// Infer with an output in shared memory needs options.output_view of the
// placement's bytes: INVALID_ARGUMENT without.
absl::Status CheckOutputView(const InferOptions& options);

// Infer's result: the checked first output of `response`, its values from
// the response or, for an output in shared memory, from options.output_view.
absl::StatusOr<Tensor> OutputTensor(const inference::ModelInferResponse& response,
                                    const InferOptions& options);

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_INFER_MESSAGE_H_
