#ifndef SEPCONV_TESTS_TESTING_TENSORS_H_
#define SEPCONV_TESTS_TESTING_TENSORS_H_

// Tensors for tests: sizes and reproducible random values. Thread-safe.

#include <cstdint>
#include <vector>

#include "engine/model_spec.h"

namespace sepconv::testing {

// n * c * h * w (engine/model_spec.h).
using ::sepconv::Elements;

// Uniform in [-1, 1), reproducible from `seed`.
std::vector<float> RandomTensor(int64_t elements, uint64_t seed);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_TENSORS_H_
