#ifndef SEPCONV_ENGINE_INTERNAL_VALIDATE_H_
#define SEPCONV_ENGINE_INTERNAL_VALIDATE_H_

// Validation pieces shared inside engine/. Thread-safe (pure functions).

#include <cstddef>

#include "absl/status/status.h"
#include "engine/model_spec.h"

namespace sepconv {
namespace internal {

// Checks one layer's hyper-parameters (not its weights): positive channels,
// stride, dilation and depth multiplier, odd kernel in 1..7, padding in
// -1..dilation*(kernel-1), weight sizes that fit int64. INVALID_ARGUMENT
// names `index` and the value.
absl::Status ValidateLayerSpec(size_t index, const LayerSpec& spec);

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_VALIDATE_H_
