#include "client/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/base/config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sepconv::client {
namespace {

#if !defined(ABSL_IS_LITTLE_ENDIAN)
#error "npy.cc copies '<f4' bytes directly and needs a little-endian host"
#endif

constexpr absl::string_view kMagic = "\x93NUMPY";

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("not a usable .npy file: ", what));
}

// The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (1, 32, 56, 56), }
// This is a small recursive-descent reader for exactly that grammar.
class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : text_(text) {}

  absl::Status Parse() {
    if (!Consume('{')) return Invalid("header does not start with '{'");
    while (true) {
      SkipSpace();
      if (Consume('}')) break;
      std::string key;
      if (!ParseString(&key)) return Invalid(absl::StrCat("bad key in header '", text_, "'"));
      if (!Consume(':')) return Invalid(absl::StrCat("missing ':' after '", key, "'"));
      absl::Status value = ParseValue(key);
      if (!value.ok()) return value;
      if (!Consume(',')) {
        if (Consume('}')) break;
        return Invalid(absl::StrCat("expected ',' or '}' in header '", text_, "'"));
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Invalid("trailing characters after the header dict");
    if (!descr_) return Invalid("header has no 'descr'");
    if (!fortran_order_) return Invalid("header has no 'fortran_order'");
    if (!shape_) return Invalid("header has no 'shape'");
    return absl::OkStatus();
  }

  const std::string& descr() const { return *descr_; }
  bool fortran_order() const { return *fortran_order_; }
  const std::vector<int64_t>& shape() const { return *shape_; }

 private:
  absl::Status ParseValue(const std::string& key) {
    SkipSpace();
    if (key == "descr") {
      std::string descr;
      if (!ParseString(&descr)) return Invalid("'descr' is not a string (structured dtype?)");
      descr_ = descr;
    } else if (key == "fortran_order") {
      if (ConsumeWord("True")) {
        fortran_order_ = true;
      } else if (ConsumeWord("False")) {
        fortran_order_ = false;
      } else {
        return Invalid("'fortran_order' is neither True nor False");
      }
    } else if (key == "shape") {
      std::vector<int64_t> shape;
      if (!Consume('(')) return Invalid("'shape' is not a tuple");
      while (true) {
        SkipSpace();
        if (Consume(')')) break;
        size_t start = pos_;
        while (pos_ < text_.size() && absl::ascii_isdigit(text_[pos_])) ++pos_;
        int64_t dim = 0;
        if (!absl::SimpleAtoi(text_.substr(start, pos_ - start), &dim)) {
          return Invalid(absl::StrCat("bad dimension in 'shape' of header '", text_, "'"));
        }
        shape.push_back(dim);
        if (!Consume(',')) {
          if (Consume(')')) break;
          return Invalid("expected ',' or ')' in 'shape'");
        }
      }
      shape_ = shape;
    } else {
      return Invalid(absl::StrCat("unexpected key '", key, "' in header"));
    }
    return absl::OkStatus();
  }

  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(text_[pos_])) ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool ConsumeWord(absl::string_view word) {
    SkipSpace();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool ParseString(std::string* out) {
    SkipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return false;
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == absl::string_view::npos) return false;
    *out = std::string(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return true;
  }

  absl::string_view text_;
  size_t pos_ = 0;
  std::optional<std::string> descr_;
  std::optional<bool> fortran_order_;
  std::optional<std::vector<int64_t>> shape_;
};

uint32_t LittleEndian(absl::string_view bytes) {
  uint32_t v = 0;
  for (size_t i = bytes.size(); i-- > 0;) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

}  // namespace

absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, kMagic.size()) != kMagic) {
    return Invalid("missing the \\x93NUMPY magic (is it a .npy file?)");
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  const int minor = static_cast<uint8_t>(bytes[7]);
  size_t prefix = 0;
  size_t header_len = 0;
  if (major == 1 && minor == 0) {
    prefix = 10;
    header_len = LittleEndian(bytes.substr(8, 2));
  } else if (major == 2 && minor == 0) {
    if (bytes.size() < 12) return Invalid("truncated in the version 2.0 preamble");
    prefix = 12;
    header_len = LittleEndian(bytes.substr(8, 4));
  } else {
    return Invalid(
        absl::StrCat("format version ", major, ".", minor, " is not supported (only 1.0 and 2.0)"));
  }
  if (bytes.size() - prefix < header_len) {
    return Invalid(absl::StrCat("truncated header: needs ", header_len, " bytes, file has ",
                                bytes.size() - prefix));
  }
  HeaderParser header(bytes.substr(prefix, header_len));
  if (absl::Status s = header.Parse(); !s.ok()) return s;

  const std::string& descr = header.descr();
  if (descr == ">f4") {
    return Invalid(
        "dtype '>f4' is big-endian float32; only little-endian '<f4' is supported "
        "(numpy: arr.astype('<f4'))");
  }
  if (descr != "<f4") {
    return Invalid(absl::StrCat("dtype '", descr,
                                "' is not supported; only little-endian float32 '<f4' "
                                "(numpy: arr.astype(np.float32))"));
  }
  if (header.fortran_order()) {
    return Invalid(
        "array is in Fortran (column-major) order; only C order is supported "
        "(numpy: np.ascontiguousarray(arr))");
  }
  absl::StatusOr<int64_t> count = ElementCount(header.shape());
  if (!count.ok()) return Invalid(count.status().message());
  const absl::string_view payload = bytes.substr(prefix + header_len);
  const uint64_t want = static_cast<uint64_t>(*count) * sizeof(float);
  if (*count > static_cast<int64_t>(INT64_MAX / sizeof(float)) || payload.size() != want) {
    return Invalid(absl::StrCat(payload.size() < want ? "truncated data" : "trailing data",
                                ": shape ", ShapeString(header.shape()), " needs ", want,
                                " bytes, file has ", payload.size()));
  }
  Tensor tensor;
  tensor.shape = header.shape();
  tensor.data.resize(static_cast<size_t>(*count));
  if (want > 0) std::memcpy(tensor.data.data(), payload.data(), want);
  return tensor;
}

absl::StatusOr<std::string> SerializeNpy(const Tensor& tensor) {
  absl::StatusOr<int64_t> count = ElementCount(tensor.shape);
  if (!count.ok()) return count.status();
  if (static_cast<uint64_t>(*count) != tensor.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor of shape ", ShapeString(tensor.shape),
                                                   " has ", tensor.data.size(),
                                                   " values, expected ", *count));
  }
  std::string shape = absl::StrJoin(tensor.shape, ", ");
  if (tensor.shape.size() == 1) shape += ",";  // a 1-tuple in Python is "(n,)"
  std::string dict =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad with spaces so that the data starts at a multiple of 64, ending in '\n'.
  const bool v1 = dict.size() + 1 + 10 <= 65535;
  const size_t prefix = v1 ? 10 : 12;
  const size_t unpadded = prefix + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');

  std::string out(kMagic);
  out.push_back(static_cast<char>(v1 ? 1 : 2));
  out.push_back(0);
  const uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (v1 ? 2u : 4u); ++i)
    out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += dict;
  out.append(reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size() * sizeof(float));
  return out;
}

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read '", path, "'"));
  absl::StatusOr<Tensor> tensor = ParseNpy(bytes);
  if (!tensor.ok()) {
    return absl::Status(tensor.status().code(),
                        absl::StrCat(path, ": ", tensor.status().message()));
  }
  return tensor;
}

absl::Status WriteNpy(const std::string& path, const Tensor& tensor) {
  absl::StatusOr<std::string> bytes = SerializeNpy(tensor);
  if (!bytes.ok()) return bytes.status();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create '", path, "': ", std::strerror(errno)));
  }
  out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write '", path, "'"));
  return absl::OkStatus();
}

}  // namespace sepconv::client
