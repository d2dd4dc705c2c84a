#ifndef SEPCONV_CLIENT_TENSOR_H_
#define SEPCONV_CLIENT_TENSOR_H_

// The client's view of a tensor: an FP32 row-major (C order) array with a
// shape. Independent of the engine's types on purpose (the client never links
// the engine). A value type; not synchronised.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sepconv::client {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // product(shape) floats, row-major
};

// The number of elements of `shape`: 1 for a scalar (empty shape). Fails with
// INVALID_ARGUMENT naming the dimension when a dimension is negative or the
// product overflows int64 (or would exceed `max_bytes` as FP32 bytes).
absl::StatusOr<int64_t> ElementCount(const std::vector<int64_t>& shape,
                                     int64_t max_bytes = INT64_MAX);

// "1,32,56,56" -> {1, 32, 56, 56}; every dimension must be a positive integer.
absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text);

// "[1, 32, 56, 56]".
std::string ShapeString(const std::vector<int64_t>& shape);

// A tensor of `shape` filled with uniform values in [-1, 1) from a generator
// seeded with `seed`: the same seed gives the same tensor.
absl::StatusOr<Tensor> RandomTensor(const std::vector<int64_t>& shape, uint64_t seed);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_TENSOR_H_
