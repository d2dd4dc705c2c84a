#!/usr/bin/env bash
# What Prometheus metrics cost: throughput of the default model at 16 clients
# with metrics on (--metrics_port=<free port>, scraped every second like
# Prometheus would) vs off (--metrics_port=0), in one run. The two servers run
# one at a time (2 cores are shared), in ABBA order over ROUNDS rounds, and the
# table gives each configuration's median throughput and the ratio.
#
# Usage: metrics_overhead.sh SERVER_BIN CLIENT_BIN
# Environment: ROUNDS (default 3), SHAPE (default 1,32,56,56),
#              CONCURRENCY (default 16), WINDOWS (default 6, 1s each)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SERVER_BIN CLIENT_BIN" >&2; exit 2; }
server_bin=$1
client_bin=$2
rounds=${ROUNDS:-3}
shape=${SHAPE:-1,32,56,56}
concurrency=${CONCURRENCY:-16}
windows=${WINDOWS:-6}
py=/usr/bin/python3

tmp=$(mktemp -d)
server_pid=""
scraper_pid=""
cleanup() {
  [ -n "$scraper_pid" ] && kill "$scraper_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_one on|off -> prints requests/s
run_one() {
  local mode=$1 metrics_port=0
  [ "$mode" = on ] && metrics_port=$(free_port)
  "$server_bin" --address=127.0.0.1 --grpc_port=0 --metrics_port="$metrics_port" \
    >"$tmp/server.log" 2>&1 &
  server_pid=$!
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -o 'gRPC port [0-9]*' "$tmp/server.log" | awk '{print $3}' || true)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "server did not start" >&2; exit 1; }
  if [ "$mode" = on ]; then  # a scraper at Prometheus' pace, so exposition cost counts too
    (while true; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; sleep 1; done) &
    scraper_pid=$!
  fi
  "$client_bin" bench --server="127.0.0.1:$port" --shape="$shape" --concurrency="$concurrency" \
    --warmup_ms=1000 --window_ms=1000 --max_windows="$windows" --stability_pct=100 \
    --json="$tmp/bench.json" >/dev/null
  [ -n "$scraper_pid" ] && { kill "$scraper_pid"; wait "$scraper_pid" 2>/dev/null || true; scraper_pid=""; }
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  $py -c 'import json,sys; s=json.load(open(sys.argv[1]))["steps"][0]; print(s["infer_per_sec"])' \
    "$tmp/bench.json"
}

on=(); off=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  for mode in $order; do
    rps=$(run_one "$mode")
    echo "round $r metrics $mode: $rps req/s" >&2
    if [ "$mode" = on ]; then on+=("$rps"); else off+=("$rps"); fi
  done
done

$py - "$shape" "$concurrency" "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
shape, conc, on, off = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
mon, moff = statistics.median(on), statistics.median(off)
print(f"default model, input {shape}, {conc} concurrent clients, {len(on)} rounds (ABBA)")
print(f"{'metrics':<10}{'median req/s':>14}   runs")
print(f"{'on':<10}{mon:>14.1f}   " + " ".join(f"{x:.1f}" for x in on))
print(f"{'off':<10}{moff:>14.1f}   " + " ".join(f"{x:.1f}" for x in off))
print(f"on/off throughput ratio: {mon / moff:.4f}  (metrics cost {100 * (1 - mon / moff):+.2f}%)")
PY
