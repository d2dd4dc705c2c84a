#!/usr/bin/python3
"""The service against gRPC's ceiling: sepconv-server configurations beside a
do-nothing echo server, in one run.

For each server (echo_server, plain and with sepconv-server's malloc settings,
then sepconv-server with default flags, then each knob) and each concurrency, `sepconv-client bench` drives a closed loop over
127.0.0.1 with the same input (default 1x32x56x56 raw FP32, 401 KB in, 803 KB
out). The table gives infer/s, p50 and p99 (medians over --repeats, the order
of the servers alternating between repeats), the ratio of throughput to the
echo server's, and the server's own split scraped from /metrics: mean queue
time, mean compute per execution, mean overhead per request
(sepconv_overhead_duration_seconds), mean batch, and minor page faults per
request (/proc/PID/stat minflt delta over the step). Below it, the c=1 latency
goal: p50 <= echo p50 + compute + 0.1 ms. Speed is reported, never asserted.

  /usr/bin/python3 tests/bench/service_bench.py --build build
"""

import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import LoggedProcess, free_port, scrape_sums  # noqa: E402

# name -> (extra flags, extra environment). "default" must stay first: it is
# what a user who runs the image as it is gets.
CONFIGS = {
    "default": ([], {}),
    # One engine thread (the default before plans were timed on one thread
    # and on all), and 2 threads with OpenMP spinning between batches
    # (libgomp's own default) or sleeping.
    "--threads=1": (["--threads=1"], {}),
    "--threads=2": (["--threads=2"], {}),
    "--threads=2 OMP_WAIT_POLICY=passive": (["--threads=2"], {"OMP_WAIT_POLICY": "passive"}),
    "--adaptive_queue_delay=false": (["--adaptive_queue_delay=false"], {}),
    "--max_batch_size=0": (["--max_batch_size=0"], {}),
}


class Process(LoggedProcess):
    """A server on 127.0.0.1; `pattern` finds its gRPC port in its log."""

    def __init__(self, argv, pattern, env=None):
        super().__init__(argv, "service_bench_", env)
        self.port = self.wait_for_port(pattern)

    def minflt(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # Fields after the parenthesised command name; minflt is field 10.
            return int(f.read().rsplit(")", 1)[1].split()[7])


def scrape(metrics_port):
    """Sums of the series this bench reads, over every label set."""
    return scrape_sums(metrics_port, names=r"sepconv_overhead_duration_seconds_(?:sum|count)")


def bench(args, port, concurrency, metrics_port=None):
    cmd = [os.path.join(args.build, "client", "sepconv-client"), "bench",
           f"--server=127.0.0.1:{port}", f"--shape={args.shape}",
           f"--concurrency={concurrency}", f"--warmup_ms={args.warmup_ms}",
           f"--window_ms={args.window_ms}", f"--max_windows={args.max_windows}",
           "--timeout_ms=60000", "--csv=-"]
    if metrics_port:
        cmd.append(f"--metrics_url=http://127.0.0.1:{metrics_port}/metrics")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    text = out.stdout[out.stdout.index("mode,load"):]
    return next(csv.DictReader(io.StringIO(text)))


def measure(args, server, concurrency, metrics_port=None):
    """One bench step with the server's page faults and overhead around it."""
    faults_before = server.minflt()
    before = scrape(metrics_port) if metrics_port else {}
    row = bench(args, server.port, concurrency, metrics_port)
    after = scrape(metrics_port) if metrics_port else {}
    requests = float(row["requests"]) or float("nan")
    # The warm-up is part of the delta: faults are per request of the step.
    total = requests * (1 + args.warmup_ms / (args.window_ms * max(1, int(row["windows"]))))
    row["faults_per_request"] = (server.minflt() - faults_before) / total
    count = after.get("sepconv_overhead_duration_seconds_count", 0) - before.get(
        "sepconv_overhead_duration_seconds_count", 0)
    total_s = after.get("sepconv_overhead_duration_seconds_sum", 0) - before.get(
        "sepconv_overhead_duration_seconds_sum", 0)
    row["overhead_ms"] = 1e3 * total_s / count if count else float("nan")
    return row


# sepconv-server's mallopt (server/main.cc) as glibc tunables, for the echo:
# the same transport without its per-call mmaps and page faults.
TUNED_MALLOC = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432:"
                                  "glibc.malloc.trim_threshold=67108864:"
                                  "glibc.malloc.arena_max=1"}


def run_echo(args, levels, env=None):
    echo = Process([os.path.join(args.build, "tests", "bench", "echo_server"),
                    "--address=127.0.0.1", "--port=0", f"--out_channels={args.out_channels}"],
                   r"listening on \S+:(\d+)", env)
    try:
        return {c: measure(args, echo, c) for c in levels}
    finally:
        echo.stop()


def run_config(args, name, levels):
    flags, env = CONFIGS[name]
    metrics_port = free_port()
    server = Process([os.path.join(args.build, "server", "sepconv-server"), "--address=127.0.0.1",
                      "--grpc_port=0", "--http_port=0", f"--metrics_port={metrics_port}",
                      "--exit_timeout_secs=10"] + flags, r"on gRPC port (\d+)", env)
    try:
        return {c: measure(args, server, c, metrics_port) for c in levels}
    finally:
        server.stop()


def number(rows, key):
    values = [float(r[key]) for r in rows if r.get(key) not in ("", None)]
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def onednn_isa(args):
    """The ISA oneDNN dispatches to here, from its verbose log of one request."""
    metrics_port = free_port()
    server = Process([os.path.join(args.build, "server", "sepconv-server"), "--address=127.0.0.1",
                      "--grpc_port=0", "--http_port=0", f"--metrics_port={metrics_port}"],
                     r"on gRPC port (\d+)", {"ONEDNN_VERBOSE": "1"})
    try:
        subprocess.run([os.path.join(args.build, "client", "sepconv-client"), "infer",
                        f"--server=127.0.0.1:{server.port}", f"--shape={args.shape}"],
                       capture_output=True, timeout=60)
        match = re.search(r"isa:([^,\n]+)", server.text())
        return match.group(1).strip() if match else "?"
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build", help="CMake build dir with the binaries")
    parser.add_argument("--shape", default="1,32,56,56")
    parser.add_argument("--out_channels", type=int, default=64, help="the echo's output channels")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from: {'; '.join(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=2, help="medians over this many runs")
    parser.add_argument("--warmup_ms", type=int, default=1000)
    parser.add_argument("--window_ms", type=int, default=1000)
    parser.add_argument("--max_windows", type=int, default=5)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    names = [n for n in args.configs.split(",") if n]
    for name in names:
        if name not in CONFIGS:
            parser.error(f"unknown config {name!r}")

    echoes = ["echo", "echo+malloc"]
    results = {name: [] for name in echoes + names}
    start_load = os.getloadavg()[0]
    for repeat in range(args.repeats):
        order = echoes + names
        if repeat % 2 == 1:
            order.reverse()
        for name in order:
            print(f"repeat {repeat + 1}/{args.repeats}: {name} ...", file=sys.stderr, flush=True)
            if name == "echo":
                results[name].append(run_echo(args, levels))
            elif name == "echo+malloc":
                results[name].append(run_echo(args, levels, TUNED_MALLOC))
            else:
                results[name].append(run_config(args, name, levels))

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        match = re.search(r"model name\s*:\s*(.*)", f.read())
        cpu = match.group(1) if match else cpu
    print(f"\n{args.shape} raw FP32, closed loop over 127.0.0.1, medians of {args.repeats} runs; "
          f"{os.cpu_count()} CPUs ({cpu}), oneDNN ISA {onednn_isa(args)}; load average "
          f"{start_load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| server | clients | infer/s | vs echo | p50 ms | p99 ms | queue ms | compute ms "
          "| overhead ms | batch | faults/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    echo = {c: number([r[c] for r in results["echo"]], "infer_per_sec") for c in levels}
    errors = 0
    labels = {"echo": "echo server (no compute)",
              "echo+malloc": "echo server, sepconv-server's malloc settings"}
    for name in echoes + names:
        for c in levels:
            rows = [r[c] for r in results[name]]
            errors += sum(int(r["error_count"]) for r in rows)
            ips = number(rows, "infer_per_sec")
            label = labels.get(name, f"sepconv-server {name}")
            server = "| - | - | - | - " if name in echoes else (
                f"| {number(rows, 'server_queue_ms'):.3f} | {number(rows, 'server_compute_ms'):.3f} "
                f"| {number(rows, 'overhead_ms'):.3f} | {number(rows, 'server_batch'):.2f} ")
            print(f"| {label} | {c} | {ips:.0f} | {ips / echo[c]:.2f} | "
                  f"{number(rows, 'p50_ms'):.2f} | {number(rows, 'p99_ms'):.2f} {server}"
                  f"| {number(rows, 'faults_per_request'):.1f} |")
    if 1 in levels:
        print("\nc=1 latency goal, p50 <= echo p50 + compute + 0.1 ms:")
        echo_p50 = number([r[1] for r in results["echo"]], "p50_ms")
        for name in names:
            rows = [r[1] for r in results[name]]
            p50, compute = number(rows, "p50_ms"), number(rows, "server_compute_ms")
            bound = echo_p50 + compute + 0.1
            print(f"  {name}: p50 {p50:.3f} ms vs {echo_p50:.3f} + {compute:.3f} + 0.1 = "
                  f"{bound:.3f} ms: {'hit' if p50 <= bound else 'miss'}")
    print(f"failed requests: {errors}")
    print(f"rerun: /usr/bin/python3 tests/bench/service_bench.py --build {args.build}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
