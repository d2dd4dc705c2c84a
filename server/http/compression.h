#ifndef SEPCONV_SERVER_HTTP_COMPRESSION_H_
#define SEPCONV_SERVER_HTTP_COMPRESSION_H_

// Request and response compression as Triton's REST frontend does it: a client that
// sends `Accept-Encoding: gzip` or `deflate` gets every non-empty answer
// (JSON and binary tensor data alike; Inference-Header-Content-Length still
// counts the uncompressed JSON header) compressed with zlib (Debian's zlib1g)
// at its fastest level, with `Content-Encoding` set. gzip is preferred when
// both are accepted; q=0 refuses an encoding. Stateless; thread-safe.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sepconv {

enum class Encoding { kGzip, kDeflate };

// The encoding to answer with for an Accept-Encoding header value, if any.
std::optional<Encoding> ChooseEncoding(absl::string_view accept_encoding);

// `body` compressed as `encoding` (gzip: RFC 1952; deflate: the zlib format
// of RFC 1950, as HTTP's "deflate" means).
absl::StatusOr<std::string> Compress(absl::string_view body, Encoding encoding);

// A request body sent with Content-Encoding `encoding` ("gzip", "x-gzip"
// or "deflate"; zlib detects the gzip or zlib wrapper either way, and raw
// deflate data is read too), inflated. INVALID_ARGUMENT for data zlib
// cannot inflate, RESOURCE_EXHAUSTED past `limit` bytes inflated,
// UNIMPLEMENTED for another encoding. "identity" or "" gives the body as it
// is.
absl::StatusOr<std::string> Decompress(absl::string_view body, absl::string_view encoding,
                                       size_t limit);

// "gzip" / "deflate".
const char* EncodingName(Encoding encoding);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_COMPRESSION_H_
