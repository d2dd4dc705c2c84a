#ifndef SEPCONV_SERVER_CORE_REQUEST_VALIDATION_H_
#define SEPCONV_SERVER_CORE_REQUEST_VALIDATION_H_

// Checks a parsed InferRequest against the model that is to serve it, before
// any allocation proportional to the request. Every rejection is
// INVALID_ARGUMENT with a message that names the offending field and value:
// input count, input name, datatype, rank, a non-positive dim, a shape whose
// size overflows int64, the channel count, raw byte size or typed element
// count versus the shape, raw and typed data given together, typed data of
// another type, requested output names (unknown, or the same one twice), a
// negative `timeout`, incomplete or
// negative shared-memory parameters, an input in shared memory that also
// carries data or whose byte size does not match its shape, and (through
// the engine's InferOutputShape) a spatial size smaller than a kernel's
// reach. Whether the regions exist and hold the ranges is checked when the
// core leases them (shared_memory.h). Fields are named as the frontend named them
// (InferInput::raw_field, typed_field). Checks only a frontend can make (e.g. gRPC's count of
// raw_input_contents, the timeout parameter's type) are the frontend's.
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/model_spec.h"
#include "server/core/infer_request.h"
#include "server/core/shared_memory.h"

namespace sepconv {

// The KServe request parameter carrying a timeout in microseconds.
inline constexpr char kTimeoutParameter[] = "timeout";

// What validation learned about a request.
struct ValidatedInfer {
  Dims4 input_dims;
  Dims4 output_dims;
  // The input came as raw bytes; the answer goes out the same way.
  bool raw = true;
  // The request's `timeout`, if any (0 = none).
  std::optional<absl::Duration> timeout;
  // Where the input is / the output goes in the client's shared memory, if
  // the request says so (the ranges are checked when leased).
  std::optional<SharedMemoryRef> input_shared_memory;
  std::optional<SharedMemoryRef> output_shared_memory;
};

absl::StatusOr<ValidatedInfer> ValidateInferRequest(const InferRequest& request,
                                                    const ModelSpec& model);

// "[1, 32, 224, 224]", for messages.
std::string ShapeString(absl::Span<const int64_t> shape);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_REQUEST_VALIDATION_H_
