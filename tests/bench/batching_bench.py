#!/usr/bin/python3
"""Dynamic batching on vs off, side by side, through the real server.

Starts sepconv-server twice per repeat (batching off: --max_batch_size=0;
on: --max_batch_size/--max_queue_delay_us below), drives each with
`sepconv-client bench` (closed loop at each concurrency, 1x32x56x56 inputs,
server-side batch sizes scraped from /metrics) and prints one table of the
medians over the repeats: throughput, p50 and p99 latency per mode, and the
on/off ratios. Speed is reported, never asserted (the exit code only says
whether the runs worked).

  /usr/bin/python3 tests/bench/batching_bench.py --build build
"""

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import LoggedProcess, free_port  # noqa: E402


class ServerProcess(LoggedProcess):
    """sepconv-server on 127.0.0.1 with a free gRPC port and metrics port."""

    def __init__(self, binary, extra_flags):
        self.metrics_port = free_port()
        super().__init__([binary, "--address=127.0.0.1", "--grpc_port=0", "--http_port=0",
                          f"--metrics_port={self.metrics_port}", "--exit_timeout_secs=10"]
                         + extra_flags, "batching_bench_server_")
        self.grpc_port = self.wait_for_port(r"on gRPC port (\d+)", timeout=60)


def run_mode(args, server_flags):
    """One server, one concurrency sweep; returns {concurrency: csv row}."""
    server = ServerProcess(os.path.join(args.build, "server", "sepconv-server"), server_flags)
    try:
        cmd = [os.path.join(args.build, "client", "sepconv-client"), "bench",
               f"--server=127.0.0.1:{server.grpc_port}", f"--shape={args.shape}",
               f"--concurrency={args.concurrency}", f"--warmup_ms={args.warmup_ms}",
               f"--window_ms={args.window_ms}", f"--max_windows={args.max_windows}",
               f"--metrics_url=http://127.0.0.1:{server.metrics_port}/metrics",
               "--timeout_ms=60000", "--csv=-"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
    finally:
        code = server.stop()
    if code != 0:
        raise RuntimeError(f"sepconv-server exited {code} after SIGTERM")
    text = out.stdout[out.stdout.index("mode,load"):]
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["mode"] == "concurrency":
            rows[int(float(row["load"]))] = row
    return rows


def ratio(a, b):
    return a / b if b else float("nan")


def median_of(results, level, key):
    values = [float(r[level][key]) for r in results if r[level][key] != ""]
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build", help="CMake build dir with the binaries")
    parser.add_argument("--shape", default="1,32,56,56")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--max_batch_size", type=int, default=8, help="batching on")
    parser.add_argument("--max_queue_delay_us", type=int, default=500, help="batching on")
    parser.add_argument("--repeats", type=int, default=3, help="off/on pairs, medians reported")
    parser.add_argument("--warmup_ms", type=int, default=1000)
    parser.add_argument("--window_ms", type=int, default=1000)
    parser.add_argument("--max_windows", type=int, default=6)
    parser.add_argument("--server_flags", default="", help="extra flags for both servers")
    args = parser.parse_args()

    extra = args.server_flags.split()
    modes = {
        "off": extra + ["--max_batch_size=0"],
        "on": extra + [f"--max_batch_size={args.max_batch_size}",
                       f"--max_queue_delay_us={args.max_queue_delay_us}"],
    }
    results = {"off": [], "on": []}
    for repeat in range(args.repeats):
        for mode in (("off", "on") if repeat % 2 == 0 else ("on", "off")):
            print(f"repeat {repeat + 1}/{args.repeats}: batching {mode} ...", file=sys.stderr,
                  flush=True)
            results[mode].append(run_mode(args, modes[mode]))

    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"\nBatching off (--max_batch_size=0) vs on (--max_batch_size={args.max_batch_size} "
          f"--max_queue_delay_us={args.max_queue_delay_us}), input {args.shape}, "
          f"medians of {args.repeats} runs each, closed loop")
    header = (f"{'clients':>7} | {'off inf/s':>9} {'p50 ms':>8} {'p99 ms':>8} | "
              f"{'on inf/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6} | "
              f"{'thr on/off':>10} {'on p99/p50':>10}")
    print(header)
    print("-" * len(header))
    errors = 0
    for level in levels:
        off = {k: median_of(results["off"], level, k) for k in ("infer_per_sec", "p50_ms", "p99_ms")}
        on = {k: median_of(results["on"], level, k)
              for k in ("infer_per_sec", "p50_ms", "p99_ms", "server_batch")}
        errors += sum(int(r[level]["error_count"]) for m in results.values() for r in m)
        print(f"{level:>7} | {off['infer_per_sec']:>9.1f} {off['p50_ms']:>8.2f} "
              f"{off['p99_ms']:>8.2f} | {on['infer_per_sec']:>9.1f} {on['p50_ms']:>8.2f} "
              f"{on['p99_ms']:>8.2f} {on['server_batch']:>6.2f} | "
              f"{ratio(on['infer_per_sec'], off['infer_per_sec']):>10.2f} "
              f"{ratio(on['p99_ms'], on['p50_ms']):>10.2f}")
    print(f"failed requests: {errors}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
