#ifndef SEPCONV_SERVER_HTTP_HTTP_STATUS_H_
#define SEPCONV_SERVER_HTTP_HTTP_STATUS_H_

// The one place the REST frontend turns an absl::Status into an HTTP answer.
// Codes follow Triton's HTTP frontend (src/http_server.cc HttpCodeFromError:
// INTERNAL 500, NOT_FOUND 404, UNAVAILABLE 503, UNIMPLEMENTED 501, every other
// error 400); for the codes Triton has no counterpart of we use the HTTP
// status that says the same thing:
//   OK                  200    NOT_FOUND          404
//   INVALID_ARGUMENT    400    RESOURCE_EXHAUSTED 429
//   FAILED_PRECONDITION 400    INTERNAL, DATA_LOSS 500
//   OUT_OF_RANGE        400    UNIMPLEMENTED      501
//   ALREADY_EXISTS      400    UNAVAILABLE        503
//   CANCELLED, UNKNOWN  400    DEADLINE_EXCEEDED  504
//   UNAUTHENTICATED     401    PERMISSION_DENIED  403
// (ABORTED 409.) A body over the size bound is refused with 413 before it is
// parsed. Stateless; thread-safe.

#include <string>

#include "absl/status/status.h"

namespace sepconv {

// The HTTP status code for `status` (table above).
int HttpStatusCode(const absl::Status& status);

// The KServe v2 error body: {"error": "<status message>"} (JSON-escaped).
std::string ErrorJson(const absl::Status& status);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_HTTP_STATUS_H_
