#ifndef SEPCONV_SERVER_CORE_INFER_REQUEST_H_
#define SEPCONV_SERVER_CORE_INFER_REQUEST_H_

// One inference request as a frontend parsed it off its wire, and what the
// core tells the frontend about the answer: protocol-free types shared by the
// gRPC and the REST frontend (server/core/inference_core.h runs them). The
// tensors are views into the frontend's own buffers: nothing is copied on the
// way in, and the output is written straight into the frontend's response
// (see OutputAllocator). Plain data; thread-compatible.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/model_spec.h"

namespace sepconv {

// The model's tensor names and wire datatype (docs/architecture.md, "What is
// served").
inline constexpr char kInputName[] = "input";
inline constexpr char kOutputName[] = "output";
inline constexpr char kDatatypeFp32[] = "FP32";

// Triton's shared-memory parameters (docs/shared_memory.md).
inline constexpr char kShmRegionParameter[] = "shared_memory_region";
inline constexpr char kShmOffsetParameter[] = "shared_memory_offset";
inline constexpr char kShmByteSizeParameter[] = "shared_memory_byte_size";

// A tensor's shared-memory parameters as the client sent them: the frontend
// checks their wire types, the core that they make sense together.
struct SharedMemoryParams {
  std::optional<std::string> region;
  std::optional<int64_t> offset;
  std::optional<int64_t> byte_size;
  bool given() const { return region.has_value() || offset.has_value() || byte_size.has_value(); }
};

// One input tensor. A frontend fills `raw` (little-endian bytes: gRPC's
// raw_input_contents, REST's binary tensor data) or `fp32` (typed values:
// gRPC's contents.fp32_contents, REST's JSON "data"), or both or neither,
// exactly as the client sent them: the core says which is wrong.
struct InferInput {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  std::optional<absl::string_view> raw;
  std::optional<absl::Span<const float>> fp32;
  // Where the frontend found typed data of another type than FP32 (e.g.
  // "contents.int_contents"), for the core's message; empty when none.
  std::string other_typed_data;
  // How the frontend's wire names `raw` and `fp32` (for messages), e.g.
  // "raw_input_contents[0]" and "contents.fp32_contents".
  std::string raw_field = "binary data";
  std::string typed_field = "data";
  // The input is in a registered shared-memory region instead.
  SharedMemoryParams shared_memory;
};

// An output the client asked for, and where it wants it.
struct RequestedOutput {
  std::string name;
  SharedMemoryParams shared_memory;  // none given: in the response
};

struct InferRequest {
  std::string model_name;
  std::string model_version;  // empty: the latest ready version
  std::string id;             // echoed in the response
  std::vector<InferInput> inputs;
  std::vector<RequestedOutput> requested_outputs;  // empty: every output, in the response
  // The request's `timeout` parameter in microseconds, if it had one; the
  // frontend reports a parameter of the wrong type, the core a negative one.
  std::optional<int64_t> timeout_us;
};

// What the core resolved for an accepted request, given to the frontend's
// OutputAllocator before computing, so that the frontend can size and fill
// its response (names, shape) and hand back where the output goes.
struct InferResult {
  std::string model_name;
  std::string model_version;  // the version that serves it (never empty)
  Dims4 output_dims;
  // Whether the input came as raw bytes: the answer goes out the same way.
  bool raw = true;
  // The output goes into the client's shared memory: the frontend writes
  // only its name, datatype and shape, and its allocator returns nullptr.
  bool output_in_shared_memory = false;
};

// Returns where the output's n*c*h*w floats (of output_dims) go, valid until
// the request's completion has run (nullptr when output_in_shared_memory);
// or an error (e.g. RESOURCE_EXHAUSTED).
using OutputAllocator = absl::AnyInvocable<absl::StatusOr<float*>(const InferResult&)>;

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_INFER_REQUEST_H_
