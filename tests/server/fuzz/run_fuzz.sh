#!/usr/bin/env bash
# Builds the request fuzzers with clang (-fsanitize=fuzzer,address,undefined)
# in their own build dir and runs each for a bounded time on its seed corpus:
# request_fuzzer (gRPC request path), then rest_fuzzer (REST parsing path).
# Environment:
#   SEPCONV_FUZZ_SECS=N       request_fuzzer run time in seconds (default 60)
#   SEPCONV_REST_FUZZ_SECS=N  rest_fuzzer run time in seconds (default 20)
#   SEPCONV_FUZZ_BUILD_DIR=D  build dir (default <repo>/build-fuzz)
#   SEPCONV_FUZZ_JOBS=N       build jobs (default 2)
# With --build-only it builds and stops (tests/run.sh builds before ctest, so
# the test's own build is an up-to-date check, not part of its time).
# Exit status: non-zero when the build fails or the fuzzer finds a crash, a
# leak, undefined behaviour or a broken invariant; the input is then in
# $SEPCONV_FUZZ_BUILD_DIR/fuzz/artifacts/ (turn it into a regression test).
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=${SEPCONV_FUZZ_BUILD_DIR:-$src/build-fuzz}
secs=${SEPCONV_FUZZ_SECS:-60}
rest_secs=${SEPCONV_REST_FUZZ_SECS:-20}
jobs=${SEPCONV_FUZZ_JOBS:-2}

CC=clang CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSEPCONV_SANITIZE=ON -DSEPCONV_FUZZ=ON -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$build" --target request_fuzzer rest_fuzzer make_fuzz_corpus -j "$jobs"
[ "${1:-}" = --build-only ] && exit 0

# run_fuzzer NAME SECS WORK LINES SEED_DIR...: runs NAME for SECS seconds on
# WORK/corpus, which receives its new inputs, and the seed dirs, which are
# only read; findings go to WORK/artifacts. Shows the last LINES lines of its
# log without per-input progress lines and the recommended dictionary; exits
# 1 on a finding.
run_fuzzer() {
  local name=$1 secs=$2 work=$3 lines=$4 status
  shift 4
  rm -rf "$work/artifacts"
  mkdir -p "$work/corpus" "$work/artifacts"
  set +e
  "$build/tests/server/fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -max_len=16384 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$@" >"$work/last_run.log" 2>&1
  status=$?
  set -e
  grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|^"|Recommended dictionary|End of recommended' \
    "$work/last_run.log" | tail -n "$lines"
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "$name failed (status $status); artifacts:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
  fi
  echo "$name: no findings in ${secs} s"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The gRPC request path: the committed seeds, plus the same ones regenerated
# from the current proto.
work=$build/fuzz
rm -rf "$work/seeds"
mkdir -p "$work/seeds"
"$build/tests/server/fuzz/make_fuzz_corpus" "$work/seeds"
run_fuzzer request_fuzzer "$secs" "$work" 60 "$src/tests/server/fuzz/corpus" "$work/seeds"

# The REST parsing path, on its own corpus.
run_fuzzer rest_fuzzer "$rest_secs" "$build/fuzz-rest" 30 "$src/tests/server/fuzz/corpus_rest"
