#ifndef SEPCONV_ENGINE_INTERNAL_CHECKED_MATH_H_
#define SEPCONV_ENGINE_INTERNAL_CHECKED_MATH_H_

// int64 arithmetic that reports overflow instead of wrapping. Thread-safe.

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace sepconv {
namespace internal {

inline std::optional<int64_t> CheckedMul(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (__builtin_mul_overflow(product, f, &product)) return std::nullopt;
  }
  return product;
}

inline std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_CHECKED_MATH_H_
