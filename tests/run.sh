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
