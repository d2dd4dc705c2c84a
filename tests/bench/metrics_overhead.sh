#!/usr/bin/env bash
# What Prometheus metrics cost: throughput of the default model at 16 clients
# with metrics on (a free --metrics_port, scraped every second as Prometheus
# would) vs off (--metrics_port=0), in one run.
#
# Two ways to share the machine fairly (the 2 cores are shared with others):
#   PAIRED=1 (default): both servers run at the same time, each driven by its
#     own 16-client bench; they see the same background load, and the kernel
#     gives them equal CPU, so the throughput ratio is the efficiency ratio.
#   PAIRED=0: one server at a time, in ABBA order.
# ROUNDS rounds either way; the table shows each configuration's runs, the
# medians and the median of the per-round on/off ratios. It also shows the
# server's CPU time per request (utime+stime from /proc over the bench, divided
# by the requests completed), which a busy machine disturbs much less than
# throughput: on a dedicated machine, throughput = cores / CPU per request.
#
# Usage: metrics_overhead.sh SERVER_BIN CLIENT_BIN
# Environment: ROUNDS (default 5), PAIRED (default 1), SHAPE (default
#              1,32,56,56), CONCURRENCY (default 16), WINDOWS (default 5, 1s each),
#              SERVER_FLAGS (extra sepconv-server flags, e.g. --threads=1: on a
#              machine busy with other work, OpenMP teams of 2 stall at barriers),
#              NICE (e.g. -10, as root: run servers and clients ahead of other
#              work on a shared machine; both configurations alike)
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SERVER_BIN CLIENT_BIN" >&2; exit 2; }
server_bin=$1
client_bin=$2
rounds=${ROUNDS:-5}
paired=${PAIRED:-1}
shape=${SHAPE:-1,32,56,56}
concurrency=${CONCURRENCY:-16}
windows=${WINDOWS:-5}
read -r -a server_flags <<<"${SERVER_FLAGS:-}"
run=(nice -n "${NICE:-0}")
py=/usr/bin/python3

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server on|off: starts it (plus a 1s scraper when on); sets grpc_port.
start_server() {
  local mode=$1 metrics_port=0
  [ "$mode" = on ] && metrics_port=$(free_port)
  "${run[@]}" "$server_bin" --address=127.0.0.1 --grpc_port=0 --http_port=0 --metrics_port="$metrics_port" "${server_flags[@]}" \
    >"$tmp/server-$mode.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  server_pid[$mode]=$pid
  grpc_port=""
  for _ in $(seq 1 300); do
    grpc_port=$(grep -o 'gRPC port [0-9]*' "$tmp/server-$mode.log" | awk '{print $3}' || true)
    [ -n "$grpc_port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server-$mode.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$grpc_port" ] || { echo "server ($mode) did not start" >&2; exit 1; }
  if [ "$mode" = on ]; then
    (while true; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; sleep 1; done) &
    pids+=("$!")
  fi
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

# bench PORT OUT.json: 16 closed-loop clients, fixed windows.
bench() {
  "${run[@]}" "$client_bin" bench --server="127.0.0.1:$1" --shape="$shape" --concurrency="$concurrency" \
    --warmup_ms=1000 --window_ms=1000 --max_windows="$windows" --stability_pct=100 \
    --json="$2" >/dev/null
}

rps() { $py -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["infer_per_sec"])' "$1"; }
requests() { $py -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["requests"])' "$1"; }
# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  $py -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
# cpu_ms_per_request CPU_BEFORE CPU_AFTER BENCH_JSON
cpu_ms_per_request() { $py -c 'import sys; print(1000*(float(sys.argv[2])-float(sys.argv[1]))/float(sys.argv[3]))' "$1" "$2" "$(requests "$3")"; }

declare -A server_pid cpu0
on=(); off=(); on_cpu=(); off_cpu=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  if [ "$paired" = 1 ]; then
    declare -A port
    for mode in $order; do start_server "$mode"; port[$mode]=$grpc_port; done
    for mode in on off; do cpu0[$mode]=$(cpu_secs "${server_pid[$mode]}"); done
    bench "${port[on]}" "$tmp/on.json" & b1=$!
    bench "${port[off]}" "$tmp/off.json" & b2=$!
    wait "$b1" "$b2"
    for mode in on off; do
      cpu_ms_per_request "${cpu0[$mode]}" "$(cpu_secs "${server_pid[$mode]}")" "$tmp/$mode.json" \
        >"$tmp/$mode.cpu"
    done
    stop_all
  else
    for mode in $order; do
      start_server "$mode"
      cpu0[$mode]=$(cpu_secs "${server_pid[$mode]}")
      bench "$grpc_port" "$tmp/$mode.json"
      cpu_ms_per_request "${cpu0[$mode]}" "$(cpu_secs "${server_pid[$mode]}")" "$tmp/$mode.json" \
        >"$tmp/$mode.cpu"
      stop_all
    done
  fi
  on+=("$(rps "$tmp/on.json")"); off+=("$(rps "$tmp/off.json")")
  on_cpu+=("$(cat "$tmp/on.cpu")"); off_cpu+=("$(cat "$tmp/off.cpu")")
  echo "round $r: on ${on[-1]} req/s ${on_cpu[-1]} CPU ms/req," \
    "off ${off[-1]} req/s ${off_cpu[-1]} CPU ms/req" >&2
done

$py - "$shape" "$concurrency" "$paired" "${on[*]}" "${off[*]}" "${on_cpu[*]}" "${off_cpu[*]}" <<'PY'
import statistics, sys
shape, conc, paired = sys.argv[1:4]
on, off, on_cpu, off_cpu = ([float(x) for x in arg.split()] for arg in sys.argv[4:8])
ratios = [a / b for a, b in zip(on, off)]
cpu_ratios = [a / b for a, b in zip(on_cpu, off_cpu)]
how = "paired (both at once)" if paired == "1" else "one at a time, ABBA"
print(f"metrics on vs off: default model, input {shape}, {conc} clients each, "
      f"{len(on)} rounds, {how}")
print(f"{'metrics':<9}{'median req/s':>13}   runs")
print(f"{'on':<9}{statistics.median(on):>13.1f}   " + " ".join(f"{x:.1f}" for x in on))
print(f"{'off':<9}{statistics.median(off):>13.1f}   " + " ".join(f"{x:.1f}" for x in off))
print(f"per-round on/off ratios: " + " ".join(f"{x:.3f}" for x in ratios))
m = statistics.median(ratios)
print(f"median on/off ratio {m:.4f}: metrics cost {100 * (1 - m):+.2f}% of throughput")
print()
print(f"{'metrics':<9}{'server CPU ms/request (median)':>31}   runs")
print(f"{'on':<9}{statistics.median(on_cpu):>31.4f}   " + " ".join(f"{x:.4f}" for x in on_cpu))
print(f"{'off':<9}{statistics.median(off_cpu):>31.4f}   " + " ".join(f"{x:.4f}" for x in off_cpu))
c = statistics.median(cpu_ratios)
print(f"per-round on/off CPU ratios: " + " ".join(f"{x:.3f}" for x in cpu_ratios))
print(f"median on/off CPU-per-request ratio {c:.4f}: metrics cost {100 * (c - 1):+.2f}% of server CPU")
PY
