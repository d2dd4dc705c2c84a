#ifndef SEPCONV_TESTS_TESTING_FREE_PORT_H_
#define SEPCONV_TESTS_TESTING_FREE_PORT_H_

// The one free-port finder of the tests. Thread-safe.

#include "absl/status/statusor.h"

namespace sepconv::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for
// port 0; another process may take it before the caller binds it).
absl::StatusOr<int> FreePort();

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_FREE_PORT_H_
