#ifndef SEPCONV_TESTS_ENGINE_LOADER_NPY_READER_H_
#define SEPCONV_TESTS_ENGINE_LOADER_NPY_READER_H_

// Reads a little-endian float32, C-order .npy file (format 1.0 or 2.0), as
// numpy.save writes it. Test-only.

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sepconv {
namespace testing_npy {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string bytes = buffer.str();
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a .npy file"));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    offset = 10;
  } else {
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  }
  const std::string header = bytes.substr(offset, header_len);
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": want <f4 C order, got ", header));
  }
  const size_t open = header.find("'shape': (");
  const size_t close = header.find(')', open);
  NpyArray array;
  int64_t count = 1;
  for (absl::string_view part :
       absl::StrSplit(header.substr(open + 10, close - open - 10), ',', absl::SkipWhitespace())) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad shape in ", header));
    }
    array.shape.push_back(d);
    count *= d;
  }
  const size_t data_offset = offset + header_len;
  if (bytes.size() - data_offset != static_cast<size_t>(count) * 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": size does not match the shape"));
  }
  array.data.resize(count);
  std::memcpy(array.data.data(), bytes.data() + data_offset, count * 4);
  return array;
}

}  // namespace testing_npy
}  // namespace sepconv

#endif  // SEPCONV_TESTS_ENGINE_LOADER_NPY_READER_H_
