#!/usr/bin/env bash
# Stress of the client's asynchronous path: `sepconv-client bench` with tiny
# windows, many concurrency steps and two kinds of forced early ends, over
# plaintext and TLS, against two real sepconv-servers on 127.0.0.1:
#   deadline  --timeout_ms=1: requests end by their deadline while the steps
#             start, stop and drain around them;
#   drain     --drain_timeout_ms=1: the step gives up draining with requests
#             still in flight (bench fails with "still in flight"), so the
#             Clients are destroyed with calls pending.
# A run is the four invocations (2 kinds x 2 transports). An invocation is
# clean when it exits 0, or 1 with bench's own error for that kind, and prints
# no sanitizer report; anything else (a report, a signal, a hang) is a failure
# and its whole stderr is printed. Meant for the ASan build (that is what finds
# lifetime bugs); prints a tally and exits 1 on any failure.
#
# Usage: tests/bench/client_stress.sh [BUILD_DIR] [--runs N]   (build, 50)
# Environment: SERVER_BIN, the server to run (default BUILD_DIR/server/sepconv-server).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build
runs=50
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    *) build=$1; shift ;;
  esac
done
server_bin=${SERVER_BIN:-$build/server/sepconv-server}
client_bin=$build/client/sepconv-client
for b in "$server_bin" "$client_bin"; do
  [ -x "$b" ] || { echo "client_stress: $b missing; build sepconv-server sepconv-client" >&2; exit 2; }
done

# shellcheck source=tests/testing/servers.sh
source tests/testing/servers.sh

{
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 -days 1 "${ec[@]}" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -subj /CN=stress-ca
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/server.ext"
  openssl req -new "${ec[@]}" -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj /CN=localhost
  openssl x509 -req -days 1 -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -set_serial "0x$RANDOM" -out "$tmp/server.crt" -extfile "$tmp/server.ext"
} >/dev/null 2>&1

start_server plain
client_flags[plain]=""
start_server tls --tls_cert="$tmp/server.crt" --tls_key="$tmp/server.key"
client_flags[tls]="--tls --tls_ca=$tmp/ca.crt"
wait_servers 300 plain tls

common=(bench "--shape=1,32,8,8" --channels=2 --warmup_ms=0 --window_ms=1 --max_windows=1)
declare -A kind_flags expected
kind_flags[deadline]="--timeout_ms=1 --concurrency=1,2,4,8,16,32,64"
expected[deadline]="requests failed"
kind_flags[drain]="--timeout_ms=5000 --drain_timeout_ms=1 --concurrency=8,16,32,64"
expected[drain]="still in flight"

clean=0
failures=0
drained_early=0  # drain invocations that really gave up with calls in flight
for run in $(seq "$runs"); do
  run_ok=1
  for name in plain tls; do
    for kind in deadline drain; do
      code=0
      # shellcheck disable=SC2086
      timeout 120 "$client_bin" "${common[@]}" --server="127.0.0.1:${port[$name]}" \
        ${client_flags[$name]} ${kind_flags[$kind]} >"$tmp/out" 2>"$tmp/err" || code=$?
      bad=""
      if grep -qE "Sanitizer|runtime error:" "$tmp/err"; then
        bad="sanitizer report"
      elif [ "$code" = 1 ] && ! grep -q "${expected[$kind]}" "$tmp/err"; then
        bad="exit 1 without '${expected[$kind]}'"
      elif [ "$code" != 0 ] && [ "$code" != 1 ]; then
        bad="exit code $code"
      fi
      if [ "$kind" = drain ] && grep -q "still in flight" "$tmp/err"; then
        drained_early=$((drained_early + 1))
      fi
      if [ -n "$bad" ]; then
        run_ok=""
        echo "client_stress: run $run, $name/$kind: $bad; its stderr:" >&2
        cat "$tmp/err" >&2
      fi
    done
  done
  for name in plain tls; do
    if ! kill -0 "${server_pid[$name]}" 2>/dev/null; then
      echo "client_stress: the $name server died; its log:" >&2
      cat "$tmp/$name.log" >&2
      exit 1
    fi
  done
  if [ -n "$run_ok" ]; then clean=$((clean + 1)); else failures=$((failures + 1)); fi
  echo "run $run/$runs: $([ -n "$run_ok" ] && echo clean || echo FAILED)"
done

echo "client_stress ($build): runs $runs, clean $clean, failures $failures" \
  "(drain invocations that gave up with calls in flight: $drained_early of $((2 * runs)))"
[ "$failures" = 0 ]
