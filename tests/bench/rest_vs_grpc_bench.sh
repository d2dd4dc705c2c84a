#!/usr/bin/env bash
# REST vs gRPC on one sepconv-server (issue 15's figure): throughput and p50
# at c=1 and c=16 for a 1x32x56x56 input, REST with JSON tensors and with
# binary tensor data (rest_load, httplib's client), gRPC with raw bytes
# (`sepconv-client bench`), in one run. Each (c, protocol) step runs ROUNDS
# times in rotating order (the machine may be shared); the table shows the
# medians and each REST mode's ratio to gRPC. Indicative only: measure in a
# quiet window for figures to quote. Prints the ISA oneDNN dispatched.
#
# Usage: rest_vs_grpc_bench.sh SERVER_BIN CLIENT_BIN REST_LOAD_BIN
# Environment: ROUNDS (default 3), SECONDS_PER_STEP (default 4), SHAPE
#              (default 1,32,56,56), CONCURRENCY (default "1 16"),
#              SERVER_FLAGS (extra sepconv-server flags)
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SERVER_BIN CLIENT_BIN REST_LOAD_BIN" >&2; exit 2; }
server_bin=$1 client_bin=$2 rest_bin=$3
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_STEP:-4}
shape=${SHAPE:-1,32,56,56}
read -r -a levels <<<"${CONCURRENCY:-1 16}"
read -r -a server_flags <<<"${SERVER_FLAGS:-}"
py=/usr/bin/python3

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server [ENV=VALUE...]: sets server_pid, http_port, grpc_port.
start_server() {
  http_port=$(free_port)
  env "$@" "$server_bin" --address=127.0.0.1 --grpc_port=0 --metrics_port=0 \
    --http_port="$http_port" "${server_flags[@]}" >"$tmp/server.log" 2>&1 &
  server_pid=$!
  grpc_port=""
  for _ in $(seq 1 300); do
    grpc_port=$(grep -o 'gRPC port [0-9]*' "$tmp/server.log" | awk '{print $3}' || true)
    [ -n "$grpc_port" ] && curl -sf "http://127.0.0.1:$http_port/v2/health/ready" >/dev/null &&
      return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "server did not start" >&2
  exit 1
}

# The ISA oneDNN dispatches to: one small request to a verbose server.
start_server ONEDNN_VERBOSE=1
"$rest_bin" --port="$http_port" --shape=1,32,8,8 --warmup_seconds=0 --seconds=0.2 >/dev/null
isa=$(grep -o 'isa:[^,]*' "$tmp/server.log" | head -1 || true)
kill "$server_pid" && wait "$server_pid" || true
start_server

# step MODE C: one measurement, prints "rps p50_ms".
step() {
  local mode=$1 c=$2
  if [ "$mode" = grpc ]; then
    "$client_bin" bench --server="127.0.0.1:$grpc_port" --shape="$shape" --concurrency="$c" \
      --warmup_ms=1000 --window_ms=$((secs * 1000)) --max_windows=1 --stability_pct=100 \
      --csv=- 2>/dev/null | awk -F, '$2 ~ /^[0-9.]+$/ && NF > 10 {print $7, $10; exit}'
  else
    local flag=--nobinary
    [ "$mode" = rest_binary ] && flag=--binary
    "$rest_bin" --port="$http_port" --shape="$shape" --concurrency="$c" "$flag" \
      --warmup_seconds=1 --seconds="$secs" | sed -E 's/.*rps=([0-9.]+) p50_ms=([0-9.]+).*/\1 \2/'
  fi
}

modes=(grpc rest_json rest_binary)
for c in "${levels[@]}"; do
  for r in $(seq 1 "$rounds"); do
    for i in 0 1 2; do  # rotate the order each round
      mode=${modes[$(((i + r) % 3))]}
      echo "$c $mode $(step "$mode" "$c")" >>"$tmp/results"
    done
  done
done

echo "REST vs gRPC, shape $shape, $rounds rounds of ${secs}s per step (medians); oneDNN ${isa:-isa unknown}"
$py - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    c, mode, rps, p50 = line.split()
    rows.setdefault((int(c), mode), []).append((float(rps), float(p50)))
print(f"{'c':>3} {'protocol':<12} {'infer/s':>9} {'p50 ms':>8} {'vs gRPC thr':>12} {'vs gRPC p50':>12}")
for c in sorted({k[0] for k in rows}):
    g = rows[(c, "grpc")]
    g_rps = statistics.median(r for r, _ in g)
    g_p50 = statistics.median(p for _, p in g)
    for mode in ("grpc", "rest_json", "rest_binary"):
        v = rows[(c, mode)]
        rps = statistics.median(r for r, _ in v)
        p50 = statistics.median(p for _, p in v)
        print(f"{c:>3} {mode:<12} {rps:>9.1f} {p50:>8.2f} {rps / g_rps:>11.2f}x {p50 / g_p50:>11.2f}x")
PY
