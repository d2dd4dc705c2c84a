#!/usr/bin/env bash
# Runs every benchmark in one go and prints the tables of docs/performance.md (Markdown):
# the engine through the server beside XNNPACK, PyTorch and the roofline (and
# in-process, as a diagnostic), the service against the echo server, system
# shared memory vs the raw gRPC path, dynamic batching on vs off, the cost of
# metrics and of TLS.
# Speed is reported here, never asserted by tests.
#
# Usage: tests/bench/run_all.sh [BUILD_DIR] > tables.md   (default: build)
# Builds what it needs first. Each part's own script documents its knobs.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
cmake --build "$build" --target engine_bench xnnpack_bench helper_wake_bench echo_server sepconv-server sepconv-client >&2

section() { printf '\n### %s\n\n' "$1"; }
echo "Measured on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1 /proc/loadavg) at start."

section "Engine through the server vs XNNPACK and PyTorch (fp32, 1 and 2 threads, NCHW in and out)"
/usr/bin/python3 tests/bench/server_engine_bench.py --build_dir "$build" --markdown

section "First request after load vs warm ones, in the server's own request time (with and without model_warmup)"
/usr/bin/python3 tests/bench/server_warmup_bench.py --build_dir "$build" --markdown

section "Fresh servers with and without a tuning cache (first request of a shape, compute, plans served)"
/usr/bin/python3 tests/bench/tuning_cache_bench.py --build_dir "$build" --markdown

section "OpenMP wait policies through fresh servers (libgomp's default spin vs passive)"
/usr/bin/python3 tests/bench/wait_policy_bench.py --build_dir "$build" --markdown

section "Helpers woken after an idle gap: beside their caller or behind it (TilePool, OpenMP)"
"$build/tests/bench/helper_wake_bench"

section "Engine in-process, every layout (diagnostic; fp32, 2 threads, warm)"
/usr/bin/python3 tests/bench/run_engine_bench.py --build_dir "$build" --suite all --markdown

section "Service vs a do-nothing echo server (1 and 16 clients, 127.0.0.1)"
/usr/bin/python3 tests/bench/service_bench.py --build "$build"

section "System shared memory vs gRPC raw (1 and 16 clients, 1x32x56x56, same host)"
/usr/bin/python3 tests/bench/shm_bench.py --build "$build" --markdown

section "REST (binary and JSON tensors) vs gRPC (1 and 16 clients, 1x32x56x56)"
tests/bench/rest_vs_grpc_bench.sh "$build/server/sepconv-server" "$build/client/sepconv-client"

section "Dynamic batching off vs on (1x32x56x56)"
/usr/bin/python3 tests/bench/batching_bench.py --build "$build"

section "Metrics on vs off (16 clients)"
tests/bench/metrics_overhead.sh "$build/server/sepconv-server" "$build/client/sepconv-client"

section "TLS vs plaintext (16 clients)"
tests/bench/run_tls_bench.sh "$build"
