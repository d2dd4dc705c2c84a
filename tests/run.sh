#!/usr/bin/env bash
# Installs what is missing, builds (incrementally) and runs every test.
# Environment:
#   SEPCONV_SANITIZE=0   skip the second, ASan+UBSan build and run
#   SEPCONV_FUZZ_SECS=N  how long the fuzzer runs (default 60)
#   SEPCONV_SOAK_SECS=N  how long the soak test runs (default 60)
#   CTEST_ARGS="-L unit" extra arguments for ctest (e.g. to pick labels), in
#                        both passes; they compose with the ASan pass's own
#                        -L "unit|integration" (ctest runs the tests that
#                        match every -L given).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh test
jobs=$(nproc)
read -r -a extra_args <<<"${CTEST_ARGS:-}"

# Runs ctest in build dir $1 with the rest as arguments; fails, naming the
# dir, when that selection holds no test (e.g. a dir configured without
# tests), instead of passing with nothing run.
run_ctest() {
  local dir=$1
  shift
  local total
  total=$(cd "$dir" && ctest -N "$@" | sed -n 's/^Total Tests: //p') || total=0
  if [ "${total:-0}" = 0 ]; then
    echo "tests/run.sh: no tests found in $dir (ctest $*): is SEPCONV_BUILD_TESTS ON in" \
      "$dir/CMakeCache.txt, and do the labels match?" >&2
    exit 1
  fi
  (cd "$dir" && ctest --no-tests=error --output-on-failure -j "$jobs" "$@") || {
    echo "tests/run.sh: tests failed in $dir" >&2
    exit 1
  }
}

# Tests ON explicitly: deploy/serve.sh configures the same build/ with
# -DSEPCONV_BUILD_TESTS=OFF, and the cache would keep that.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSEPCONV_BUILD_TESTS=ON >/dev/null
cmake --build build -j "$jobs"
# The fuzzers' clang tree is built here, not inside the fuzz test's timeout,
# when the selection includes that test.
if (cd build && ctest -N "${extra_args[@]}" | grep -qE ': request_fuzzer$'); then
  tests/server/fuzz/run_fuzz.sh --build-only
fi
run_ctest build "${extra_args[@]}"

# The unit and integration suites again under AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer, in a second build dir.
if [ "${SEPCONV_SANITIZE:-1}" != 0 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEPCONV_SANITIZE=ON \
    -DSEPCONV_BUILD_TESTS=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan -L "unit|integration" "${extra_args[@]}"
fi
