#ifndef SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
#define SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_

// What the engine's tests share. Header-only: a test that links
// sepconv_engine includes it with no target of its own.

#include <cstdint>

#include "engine/model_spec.h"

namespace sepconv::testing {

// A layer from `in` to `out` channels, every other field at its default.
inline LayerSpec Spec(int64_t in, int64_t out) {
  LayerSpec s;
  s.in_channels = in;
  s.out_channels = out;
  return s;
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
