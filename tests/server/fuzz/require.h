#ifndef SEPCONV_TESTS_SERVER_FUZZ_REQUIRE_H_
#define SEPCONV_TESTS_SERVER_FUZZ_REQUIRE_H_

// The fuzzers' one check: a broken invariant aborts, so that libFuzzer
// reports it with the input that caused it.

#include <cstdio>
#include <cstdlib>

namespace sepconv::testing {

// Aborts, naming `what` on stderr, unless `condition` holds.
inline void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_FUZZ_REQUIRE_H_
