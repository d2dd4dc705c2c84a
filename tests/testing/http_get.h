#ifndef SEPCONV_TESTS_TESTING_HTTP_GET_H_
#define SEPCONV_TESTS_TESTING_HTTP_GET_H_

// A blocking HTTP/1.0 GET over IPv4 loopback for tests, with a timeout.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sepconv::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GET http://127.0.0.1:port/path; an error if the connection fails or the
// exchange takes longer than `timeout`.
absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path,
                                     absl::Duration timeout = absl::Seconds(5));

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_HTTP_GET_H_
