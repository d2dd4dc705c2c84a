#include "client/tensor.h"

#include <limits>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sepconv::client {

absl::StatusOr<int64_t> ElementCount(const std::vector<int64_t>& shape, int64_t max_bytes) {
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t dim = shape[i];
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", i, " of shape ", ShapeString(shape), " is negative"));
    }
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has more elements than int64 can count"));
    }
    count *= dim;
  }
  if (count > max_bytes / static_cast<int64_t>(sizeof(float))) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeString(shape), " needs ", count,
                                                   " floats, more than the limit of ", max_bytes,
                                                   " bytes"));
  }
  return count;
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view text) {
  std::vector<int64_t> shape;
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("empty shape: expected comma-separated dims like 1,32,56,56");
  }
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &dim) || dim <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad shape '", text, "': dimension '", part, "' is not a positive integer"));
    }
    shape.push_back(dim);
  }
  // 2 GiB of floats is far beyond any message the server accepts.
  if (absl::StatusOr<int64_t> n = ElementCount(shape, int64_t{1} << 31); !n.ok()) {
    return n.status();
  }
  return shape;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<Tensor> RandomTensor(const std::vector<int64_t>& shape, uint64_t seed) {
  absl::StatusOr<int64_t> count = ElementCount(shape, int64_t{1} << 31);
  if (!count.ok()) return count.status();
  Tensor tensor;
  tensor.shape = shape;
  tensor.data.resize(static_cast<size_t>(*count));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : tensor.data) v = uniform(rng);
  return tensor;
}

}  // namespace sepconv::client
