#ifndef SEPCONV_ENGINE_FLOPS_H_
#define SEPCONV_ENGINE_FLOPS_H_

// FLOP accounting (FLOPs = 2 x multiplications; biases and activations are
// not counted). Per layer with output size Ho x Wo, kernel K, M input
// channels, depth multiplier dm and N output channels:
//   depthwise = 2 * n * Ho * Wo * K^2 * M * dm
//   pointwise = 2 * n * Ho * Wo * M * dm * N
//   standard  = 2 * n * Ho * Wo * K^2 * M * N  (one KxK convolution M -> N)
// so for dm = 1 the separable/standard ratio is 1/N + 1/K^2.

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"

namespace sepconv {

struct FlopCount {
  int64_t depthwise = 0;
  int64_t pointwise = 0;
  int64_t standard = 0;  // the standard-convolution equivalent

  FlopCount& operator+=(const FlopCount& other) {
    depthwise += other.depthwise;
    pointwise += other.pointwise;
    standard += other.standard;
    return *this;
  }
};

// FLOPs of one forward pass of `model` on `input`; errors as InferOutputShape.
absl::StatusOr<FlopCount> CountFlops(const ModelSpec& model, const Dims4& input);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_FLOPS_H_
