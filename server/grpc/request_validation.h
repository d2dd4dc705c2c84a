#ifndef SEPCONV_SERVER_GRPC_REQUEST_VALIDATION_H_
#define SEPCONV_SERVER_GRPC_REQUEST_VALIDATION_H_

// Checks a KServe v2 ModelInferRequest against the model that is to serve it,
// before any allocation proportional to the request. Every rejection is
// INVALID_ARGUMENT with a message that names the offending field and value:
// input count, input name, datatype, rank, a non-positive dim, a shape whose
// size overflows int64, the channel count, raw byte size or typed element
// count versus the shape, raw and typed contents given together, requested
// output names, the `timeout` parameter, and (through the engine's
// InferOutputShape) a spatial size smaller than a kernel's reach.
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/model_spec.h"
#include "grpc_service.pb.h"
#include "server/core/infer_request.h"

namespace sepconv {

// The KServe request parameter carrying a timeout in microseconds.
inline constexpr char kTimeoutParameter[] = "timeout";

// What validation learned about a request.
struct ValidatedInfer {
  Dims4 input_dims;
  Dims4 output_dims;
  // Input came in raw_input_contents; the answer goes out the same way.
  bool raw = true;
  // The request's `timeout` parameter, if any.
  std::optional<absl::Duration> timeout;
};

absl::StatusOr<ValidatedInfer> ValidateInferRequest(const inference::ModelInferRequest& request,
                                                    const ModelSpec& model);

// "[1, 32, 224, 224]", for messages.
std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_REQUEST_VALIDATION_H_
