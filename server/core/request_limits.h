#ifndef SEPCONV_SERVER_CORE_REQUEST_LIMITS_H_
#define SEPCONV_SERVER_CORE_REQUEST_LIMITS_H_

// Size limits on inference requests, checked after validation (which bounds
// the input by the received message) and before the response's output
// buffer, the largest allocation a request causes, is made. A refusal is
// RESOURCE_EXHAUSTED naming the limit, its flag and the request's value.
// Plain data and a pure function; thread-safe.

#include <cstdint>

#include "absl/status/status.h"
#include "engine/model_spec.h"

namespace sepconv {

struct RequestLimits {
  // Elements of the input and, separately, of the output (N*C*H*W); 0 = no
  // limit. The default is what a 64 MiB fp32 message holds.
  int64_t max_elements = int64_t{16} << 20;
  // Largest H and largest W of the input; 0 = no limit.
  int64_t max_spatial_size = 4096;
  // Largest N of one request; 0 = no limit.
  int64_t max_batch = 0;
};

// OK, or RESOURCE_EXHAUSTED when `input` or `output` exceeds `limits`.
absl::Status CheckRequestLimits(const RequestLimits& limits, const Dims4& input,
                                const Dims4& output);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_REQUEST_LIMITS_H_
