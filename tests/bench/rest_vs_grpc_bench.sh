#!/usr/bin/env bash
# REST vs gRPC on one sepconv-server: throughput and p50 at c=1 and c=16 for
# a 1x32x56x56 input, with the same client for every protocol
# (`sepconv-client bench`): gRPC raw bytes, REST binary tensor data, REST
# JSON tensors. Each (c, protocol) step runs ROUNDS times in rotating order
# (the machine may be shared); the table shows medians and each protocol's
# ratio to gRPC. With BASELINE_SERVER (another build's sepconv-server), REST
# JSON and REST binary run against it too, in the same rotation, and the
# table adds the current server's ratio to it. Prints the machine and the
# ISA oneDNN dispatched. Client and server share the machine's CPUs.
#
# Usage: rest_vs_grpc_bench.sh SERVER_BIN CLIENT_BIN
# Environment: ROUNDS (default 3), SECONDS_PER_STEP (default 4), SHAPE
#              (default 1,32,56,56), CONCURRENCY (default "1 16"),
#              SERVER_FLAGS (extra sepconv-server flags), BASELINE_SERVER
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SERVER_BIN CLIENT_BIN" >&2; exit 2; }
server_bin=$1 client_bin=$2
baseline_bin=${BASELINE_SERVER:-}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_STEP:-4}
shape=${SHAPE:-1,32,56,56}
read -r -a levels <<<"${CONCURRENCY:-1 16}"
read -r -a server_flags <<<"${SERVER_FLAGS:-}"
py=/usr/bin/python3

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server NAME BIN [ENV=VALUE...]: starts BIN (gRPC on a port of its
# choice, REST on a free one) and writes "grpc_port http_port" to
# $tmp/NAME.ports.
start_server() {
  local name=$1 bin=$2
  shift 2
  local http grpc=""
  http=$(free_port)
  env "$@" "$bin" --address=127.0.0.1 --grpc_port=0 --http_port="$http" --metrics_port=0 \
    "${server_flags[@]}" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 300); do
    grpc=$(grep -o 'gRPC port [0-9]*' "$tmp/$name.log" | awk '{print $3}' || true)
    if [ -n "$grpc" ] &&
      curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null; then
      echo "$grpc $http" >"$tmp/$name.ports"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not start" >&2
  exit 1
}

# The ISA oneDNN dispatches to: one small request to a verbose server.
start_server isa "$server_bin" ONEDNN_VERBOSE=1
read -r _ isa_http <"$tmp/isa.ports"
"$client_bin" infer --protocol=http --server="127.0.0.1:$isa_http" --shape=1,32,8,8 >/dev/null
isa=$(grep -o 'isa:[^,]*' "$tmp/isa.log" | head -1 || true)
kill "${pids[0]}" && wait "${pids[0]}" 2>/dev/null || true
pids=()

start_server current "$server_bin"
modes=(grpc rest_binary rest_json)
if [ -n "$baseline_bin" ]; then
  start_server baseline "$baseline_bin"
  modes+=(baseline_rest_binary baseline_rest_json)
fi

# step MODE C: one measurement, prints "rps p50_ms".
step() {
  local mode=$1 c=$2 server=current
  case $mode in baseline_*) server=baseline mode=${mode#baseline_} ;; esac
  local grpc_port http_port
  read -r grpc_port http_port <"$tmp/$server.ports"
  local args=(--server="127.0.0.1:$grpc_port")
  case $mode in
    rest_binary) args=(--protocol=http --server="127.0.0.1:$http_port") ;;
    rest_json) args=(--protocol=http --json_tensors --server="127.0.0.1:$http_port") ;;
  esac
  "$client_bin" bench "${args[@]}" --shape="$shape" --concurrency="$c" \
    --warmup_ms=1000 --window_ms=$((secs * 1000)) --max_windows=1 --stability_pct=100 \
    --csv=- 2>/dev/null | awk -F, '$2 ~ /^[0-9.]+$/ && NF > 10 {print $7, $10; exit}'
}

n=${#modes[@]}
for c in "${levels[@]}"; do
  for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((n - 1))); do  # rotate the order each round
      mode=${modes[$(((i + r) % n))]}
      echo "$c $mode $(step "$mode" "$c")" >>"$tmp/results"
    done
  done
done

echo "REST vs gRPC, shape $shape, $rounds rounds of ${secs}s per step (medians), sepconv-client bench for every protocol"
echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), oneDNN ${isa:-isa unknown}"
$py - "$tmp/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    c, mode, rps, p50 = line.split()
    rows.setdefault((int(c), mode), []).append((float(rps), float(p50)))
def med(c, mode):
    v = rows[(c, mode)]
    return statistics.median(r for r, _ in v), statistics.median(p for _, p in v)
modes = ["grpc", "rest_binary", "rest_json", "baseline_rest_binary", "baseline_rest_json"]
baseline = any(k[1].startswith("baseline_") for k in rows)
head = f"| c | protocol | infer/s | p50 ms | throughput vs gRPC | p50 vs gRPC |"
rule = "|---:|---|---:|---:|---:|---:|"
if baseline:
    head += " throughput vs baseline server |"
    rule += "---:|"
print(head)
print(rule)
for c in sorted({k[0] for k in rows}):
    g_rps, g_p50 = med(c, "grpc")
    for mode in modes:
        if (c, mode) not in rows:
            continue
        rps, p50 = med(c, mode)
        line = f"| {c} | {mode} | {rps:.1f} | {p50:.2f} | {rps / g_rps:.2f}x | {p50 / g_p50:.2f}x |"
        if baseline:
            other = "baseline_" + mode
            line += f" {rps / med(c, other)[0]:.2f}x |" if (c, other) in rows else " |"
        print(line)
PY
