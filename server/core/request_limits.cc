#include "server/core/request_limits.h"

#include "absl/strings/str_cat.h"

namespace sepconv {
namespace {

// Saturating N*C*H*W (validation already refused overflowing inputs; the
// output is computed by the engine with overflow checks too).
int64_t SaturatingElements(const Dims4& d) {
  int64_t product = 1;
  for (int64_t dim : {d.n, d.c, d.h, d.w}) {
    if (__builtin_mul_overflow(product, dim, &product)) return INT64_MAX;
  }
  return product;
}

std::string ShapeOf(const Dims4& d) {
  return absl::StrCat("[", d.n, ", ", d.c, ", ", d.h, ", ", d.w, "]");
}

}  // namespace

absl::Status CheckRequestLimits(const RequestLimits& limits, const Dims4& input,
                                const Dims4& output) {
  if (limits.max_batch > 0 && input.n > limits.max_batch) {
    return absl::ResourceExhaustedError(
        absl::StrCat("input shape ", ShapeOf(input), ": batch ", input.n, " exceeds the limit of ",
                     limits.max_batch, " (--max_batch_per_request)"));
  }
  if (limits.max_spatial_size > 0 &&
      (input.h > limits.max_spatial_size || input.w > limits.max_spatial_size)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("input shape ", ShapeOf(input), ": spatial size ", input.h, "x", input.w,
                     " exceeds the limit of ", limits.max_spatial_size, " (--max_spatial_size)"));
  }
  if (limits.max_elements > 0) {
    if (SaturatingElements(input) > limits.max_elements) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "input shape ", ShapeOf(input), " has ", SaturatingElements(input),
          " elements; the limit is ", limits.max_elements, " (--max_elements_per_request)"));
    }
    if (SaturatingElements(output) > limits.max_elements) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "output shape ", ShapeOf(output), " would have ", SaturatingElements(output),
          " elements; the limit is ", limits.max_elements, " (--max_elements_per_request)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sepconv
