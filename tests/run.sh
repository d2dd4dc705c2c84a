#!/usr/bin/env bash
# Installs what is missing, builds (incrementally) and runs every test.
# Environment:
#   SEPCONV_SANITIZE=0   skip the second, ASan+UBSan build and run
#   SEPCONV_FUZZ_SECS=N  how long the fuzzer runs (default 60)
#   SEPCONV_SOAK_SECS=N  how long the soak test runs (default 60)
#   CTEST_ARGS="-L unit" extra arguments for ctest (e.g. to pick labels)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh test
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" ${CTEST_ARGS:-})

# The unit and integration suites again under AddressSanitizer (with
# LeakSanitizer) and UndefinedBehaviorSanitizer, in a second build dir.
if [ "${SEPCONV_SANITIZE:-1}" != 0 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEPCONV_SANITIZE=ON >/dev/null
  cmake --build build-asan -j "$jobs"
  (cd build-asan &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
    LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest -L "unit|integration" --output-on-failure -j "$jobs")
fi
