#ifndef SEPCONV_SERVER_GRPC_PROTO_REQUEST_H_
#define SEPCONV_SERVER_GRPC_PROTO_REQUEST_H_

// The gRPC frontend's two tensor adapters between KServe v2 messages and the
// protocol-free core, both without copies:
// - ParseModelInferRequest: a ModelInferRequest as an InferRequest whose
//   tensors are views into the message (raw_input_contents[i] for input i,
//   or its contents.fp32_contents). It makes only the checks the core
//   cannot: more raw_input_contents than inputs, and a `timeout` parameter
//   that is not an integer (INVALID_ARGUMENT naming the field); the rest is
//   the core's validation.
// - WriteResponseHeader: the response but for the output's values (for a
//   frontend that sends them from its own buffer: infer_buffers.h).
// - WriteInferResponse / ResponseAllocator: the core's OutputAllocator for a
//   ModelInferResponse: fills model name and version, request id, the output
//   tensor's name, datatype and shape, and sizes raw_output_contents (input
//   came raw) or contents.fp32_contents, returning where the core writes the
//   output in place.
// Thread-compatible: the messages must outlive what these return and must
// not be modified meanwhile.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "grpc_service.pb.h"
#include "server/core/infer_request.h"

namespace sepconv {

absl::StatusOr<InferRequest> ParseModelInferRequest(const inference::ModelInferRequest& request);

// Replaces `response` with the answer `result` describes (echoing `id`),
// but for the output's values; returns their element count.
int64_t WriteResponseHeader(const InferResult& result, const std::string& id,
                            inference::ModelInferResponse* response);

// Replaces `response` with the answer `result` describes (echoing `id`);
// returns where its output floats go (valid until the response is modified
// or destroyed).
absl::StatusOr<float*> WriteInferResponse(const InferResult& result, const std::string& id,
                                          inference::ModelInferResponse* response);

// WriteInferResponse as the core's allocator; `request` and `response` must
// outlive it.
OutputAllocator ResponseAllocator(const inference::ModelInferRequest& request,
                                  inference::ModelInferResponse* response);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_PROTO_REQUEST_H_
