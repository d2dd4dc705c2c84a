#!/usr/bin/env bash
# SIGTERM under load, many times: runs server_shutdown_test's repeated case
# (16 clients loop on the default model of a real sepconv-server, SIGTERM
# after 2 s, clients go on until the process exits) and prints its tally:
# every request must end OK with the right answer or UNAVAILABLE.
#   bash tests/server/shutdown_loop.sh BUILD_DIR [--runs N]    (default 30)
set -euo pipefail
build=${1:?usage: shutdown_loop.sh BUILD_DIR [--runs N]}
runs=30
shift
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    *) echo "shutdown_loop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
binary=$build/tests/server/server_shutdown_test
[[ -x $binary ]] || { echo "shutdown_loop.sh: no $binary (build target server_shutdown_test)" >&2; exit 2; }
status=0
output=$(SEPCONV_SHUTDOWN_RUNS=$runs "$binary" \
  --gtest_filter=ShutdownTest.SigtermUnderLoadRepeatedEndsOnlyOkOrUnavailable 2>&1) || status=$?
grep -E "shutdown tally|Failure|run [0-9]+:|OK \]|FAILED" <<<"$output" || true
exit "$status"
