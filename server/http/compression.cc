#include "server/http/compression.h"

#include <zlib.h>

#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sepconv {

std::optional<Encoding> ChooseEncoding(absl::string_view accept_encoding) {
  bool gzip = false;
  bool deflate = false;
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0]));
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view parameter = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&parameter, "q=") && !absl::SimpleAtod(parameter, &q)) q = 0;
    }
    if (q <= 0) continue;
    if (coding == "gzip" || coding == "x-gzip") gzip = true;
    if (coding == "deflate") deflate = true;
  }
  if (gzip) return Encoding::kGzip;
  if (deflate) return Encoding::kDeflate;
  return std::nullopt;
}

const char* EncodingName(Encoding encoding) {
  return encoding == Encoding::kGzip ? "gzip" : "deflate";
}

absl::StatusOr<std::string> Compress(absl::string_view body, Encoding encoding) {
  z_stream stream{};
  // windowBits 15; +16 writes the gzip wrapper instead of zlib's.
  const int window_bits = encoding == Encoding::kGzip ? 15 + 16 : 15;
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("zlib could not start compressing");
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(body.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return absl::InternalError("zlib could not compress the answer");
  return out;
}

namespace {

// `body` inflated by zlib with `window_bits` (which selects the wrapper).
absl::StatusOr<std::string> Inflate(absl::string_view body, int window_bits, size_t limit) {
  z_stream stream{};
  if (inflateInit2(&stream, window_bits) != Z_OK) {
    return absl::InternalError("zlib could not start inflating");
  }
  std::string out;
  char chunk[64 << 10];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  int result = Z_OK;
  while (result == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    result = inflate(&stream, Z_NO_FLUSH);
    const size_t produced = sizeof(chunk) - stream.avail_out;
    if (out.size() + produced > limit) {
      inflateEnd(&stream);
      return absl::ResourceExhaustedError(
          "the request body, inflated, is larger than the server accepts");
    }
    out.append(chunk, produced);
  }  // Z_BUF_ERROR: the data ended early; Z_DATA_ERROR: not this format
  inflateEnd(&stream);
  if (result != Z_STREAM_END || stream.avail_in != 0) {
    return absl::InvalidArgumentError("the request body is not valid compressed data");
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> Decompress(absl::string_view body, absl::string_view encoding,
                                       size_t limit) {
  const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(encoding));
  if (coding.empty() || coding == "identity") return std::string(body);
  if (coding != "gzip" && coding != "x-gzip" && coding != "deflate") {
    return absl::UnimplementedError(
        absl::StrCat("Content-Encoding \"", coding, "\" is not supported (gzip, deflate)"));
  }
  if (body.size() > std::numeric_limits<uInt>::max()) {
    return absl::ResourceExhaustedError("the compressed request body is too large");
  }
  // 15 + 32: the gzip or zlib wrapper, whichever is there.
  absl::StatusOr<std::string> out = Inflate(body, 15 + 32, limit);
  // Some clients send "deflate" as raw deflate data, without zlib's wrapper.
  if (!out.ok() && out.status().code() == absl::StatusCode::kInvalidArgument &&
      coding == "deflate") {
    return Inflate(body, -15, limit);
  }
  return out;
}

}  // namespace sepconv
