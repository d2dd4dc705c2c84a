#include "tests/testing/tensors.h"

#include <random>

namespace sepconv::testing {

std::vector<float> RandomTensor(int64_t elements, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(elements));
  for (float& v : values) v = uniform(rng);
  return values;
}

}  // namespace sepconv::testing
