#!/usr/bin/env bash
# Service benchmark: `sepconv-client bench` against sepconv-server and against
# the do-nothing echo_server (same proto, output-sized answers, no compute),
# over 127.0.0.1, at 1x32x56x56 and 8x32x56x56 with 16 requests in flight.
# The ratio of our throughput to the echo's is how close the service gets to
# what gRPC alone can move. Client, server and echo share this machine's CPUs.
#
# Usage: tests/bench/run_service_bench.sh [BUILD_DIR]   (default: build)
# Environment: CONCURRENCY (16), SHAPES ("1,32,56,56 8,32,56,56"),
#   WINDOW_MS (1000), MAX_WINDOWS (10), WARMUP_MS (1000), SERVER_FLAGS (extra sepconv-server flags),
#   OUT (file to also write the Markdown table to).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
server_bin=$build/server/sepconv-server
client_bin=$build/client/sepconv-client
echo_bin=$build/tests/bench/echo_server
for b in "$server_bin" "$client_bin" "$echo_bin"; do
  [ -x "$b" ] || { echo "run_service_bench: $b missing; build the targets sepconv-server sepconv-client echo_server" >&2; exit 2; }
done
concurrency=${CONCURRENCY:-16}
shapes=${SHAPES:-"1,32,56,56 8,32,56,56"}
window_ms=${WINDOW_MS:-1000}
max_windows=${MAX_WINDOWS:-10}

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

grpc_port=$(free_port)
metrics_port=$(free_port)
# shellcheck disable=SC2086
"$server_bin" --address=127.0.0.1 --grpc_port="$grpc_port" --metrics_port="$metrics_port" \
  ${SERVER_FLAGS:-} >"$tmp/server.log" 2>&1 &
pids+=($!)
"$echo_bin" --address=127.0.0.1 --port=0 --out_channels=64 >"$tmp/echo.log" 2>&1 &
pids+=($!)

# Bounded waits for both to answer.
for _ in $(seq 100); do
  "$client_bin" health --server="127.0.0.1:$grpc_port" --timeout_ms=500 >/dev/null 2>&1 && break
  sleep 0.2
done
"$client_bin" health --server="127.0.0.1:$grpc_port" --timeout_ms=2000 >/dev/null ||
  { echo "sepconv-server did not come up:" >&2; cat "$tmp/server.log" >&2; exit 1; }
for _ in $(seq 100); do
  grep -q "listening on" "$tmp/echo.log" && break
  sleep 0.1
done
echo_target=$(sed -n 's/^listening on //p' "$tmp/echo.log")
[ -n "$echo_target" ] || { echo "echo_server did not come up" >&2; cat "$tmp/echo.log" >&2; exit 1; }

# Prints "infer/s samples/s p50 p99 stable errors" of one bench run.
bench() {
  local target=$1 shape=$2 extra=$3
  # shellcheck disable=SC2086
  "$client_bin" bench --server="$target" --shape="$shape" --concurrency="$concurrency" \
    --window_ms="$window_ms" --max_windows="$max_windows" --warmup_ms="${WARMUP_MS:-1000}" \
    --csv=- $extra |
    awk -F, 'NR == 2 { printf "%s %s %s %s %s %s\n", $7, $8, $10, $13, ($4 == 1 ? "yes" : "no"), $15 }'
}

metrics="--metrics_url=http://127.0.0.1:$metrics_port/metrics"
table="| input | clients | sepconv-server infer/s | echo infer/s | ratio | sepconv p50 / p99 ms | echo p50 / p99 ms | samples/s (sepconv) |
|---|---|---|---|---|---|---|---|"
for shape in $shapes; do
  read -r s_ips s_sps s_p50 s_p99 s_stable s_err <<<"$(bench "127.0.0.1:$grpc_port" "$shape" "$metrics")"
  read -r e_ips e_sps e_p50 e_p99 e_stable e_err <<<"$(bench "$echo_target" "$shape" "")"
  if [ -z "$s_ips" ] || [ -z "$e_ips" ]; then
    echo "run_service_bench: a bench run at $shape produced no figures (see its error above)" >&2
    exit 1
  fi
  ratio=$(awk -v a="$s_ips" -v b="$e_ips" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  note=""
  [ "$s_stable$e_stable" = "yesyes" ] || note=" (not stable within $max_windows windows)"
  [ "$s_err$e_err" = "00" ] || note+=" (failed requests: sepconv $s_err, echo $e_err)"
  table+="
| ${shape//,/x} | $concurrency | $s_ips | $e_ips | **$ratio**$note | $s_p50 / $s_p99 | $e_p50 / $e_p99 | $s_sps |"
done
echo "$table"
echo
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "rerun: tests/bench/run_service_bench.sh $build"
if [ -n "${OUT:-}" ]; then echo "$table" >"$OUT"; fi
