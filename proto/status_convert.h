#ifndef SEPCONV_PROTO_STATUS_CONVERT_H_
#define SEPCONV_PROTO_STATUS_CONVERT_H_

// The conversion between absl::Status and grpc::Status, both ways: the one
// place for the server's gRPC frontend (absl -> gRPC for every answer) and the
// client (gRPC -> absl for every result). The codes keep their names and the
// message is carried as is; absl's payloads and gRPC's error details are not.
// A code outside the canonical 0-16 becomes UNKNOWN, in either direction.
// Pure functions; thread-safe.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sepconv {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// ModelStreamInfer answers a request it cannot serve in-band, in
// ModelStreamInferResponse.error_message, as "<CODE>: <message>" with absl's
// code name (e.g. "NOT_FOUND: model 'x' is not loaded"). Reading one back,
// text without a known code prefix (Triton sends the message alone) becomes
// UNKNOWN with the whole text as its message. `status` must not be OK.
std::string ToStreamErrorMessage(const absl::Status& status);
absl::Status FromStreamErrorMessage(absl::string_view text);

}  // namespace sepconv

#endif  // SEPCONV_PROTO_STATUS_CONVERT_H_
