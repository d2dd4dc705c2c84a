#ifndef SEPCONV_ENGINE_REFERENCE_H_
#define SEPCONV_ENGINE_REFERENCE_H_

// A naive implementation (plain loops, double accumulation) of ModelSpec's
// semantics. For tests only: it is slow on purpose and obviously right.

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"

namespace sepconv {

// NCHW in, NCHW out.
absl::StatusOr<std::vector<float>> ReferenceForward(const ModelSpec& model, const Dims4& input_dims,
                                                    const std::vector<float>& input);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_REFERENCE_H_
