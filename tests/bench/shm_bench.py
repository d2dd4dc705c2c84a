#!/usr/bin/python3
"""Triton's system shared-memory extension against the gRPC raw path (issue
24's goals), in one run, on one server.

One `sepconv-server --allow_shared_memory` on 127.0.0.1 serves its default
model; `sepconv-client bench` drives a closed loop at each --concurrency
(default 1 and 16) with the same input (default 1x32x56x56, 401 KB in, 803 KB
out), once over the raw gRPC path (raw_input_contents / raw_output_contents)
and once with --shared_memory=system (the client creates, registers and
names POSIX shared-memory regions: one input region, one output slice per
request in flight), for --rounds rounds, the order of the paths alternating
between rounds. The table gives the medians over the rounds of infer/s, p50
and p99, and of the engine's compute time per request from the server's
sepconv_compute_duration_seconds histogram over the same step (the bench's
own /metrics scrapes around it: _sum / _count is the mean per execution,
divided by the mean batch to give it per request), and the engine's limit,
1 / that time, at the server's thread count.

Below it, the goals: at 1 client, p50 <= compute + 0.15 ms; at 16 clients,
shared memory >= 2x the raw path's throughput, or within 10% of the engine's
limit. Speed is reported, never asserted. Then whether `sepconv-client infer`
gives bit-identical .npy outputs both ways (the exit status is 1 if not, or
if any request failed).

  /usr/bin/python3 tests/bench/shm_bench.py --build build [--markdown]
"""

import argparse
import csv
import filecmp
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, HERE)
from sepconv_testing import LoggedProcess, free_port, print_table  # noqa: E402
from service_bench import onednn_isa  # noqa: E402

PATHS = {"gRPC raw": [], "system shared memory": ["--shared_memory=system"]}


class Server(LoggedProcess):
    """sepconv-server on 127.0.0.1 with the extension on and its default model."""

    def __init__(self, build):
        self.metrics_port = free_port()
        super().__init__([os.path.join(build, "server", "sepconv-server"), "--address=127.0.0.1",
                          "--grpc_port=0", "--http_port=0", f"--metrics_port={self.metrics_port}",
                          "--allow_shared_memory", "--exit_timeout_secs=10"], "shm_bench_")
        try:
            self.port = self.wait_for_port(r"on gRPC port (\d+)")
            match = re.search(r"(\d+) instance\(s\) x (\d+) thread\(s\)", self.text())
            self.instances, self.threads = (int(match.group(1)), int(match.group(2))) if match \
                else (1, 0)
        except BaseException:
            self.stop()
            raise


def client(args):
    return os.path.join(args.build, "client", "sepconv-client")


def bench(args, server, concurrency, flags):
    """One closed-loop step of sepconv-client bench: its CSV row."""
    cmd = [client(args), "bench", f"--server=127.0.0.1:{server.port}", f"--shape={args.shape}",
           f"--concurrency={concurrency}", f"--warmup_ms={args.warmup_ms}",
           f"--window_ms={args.window_ms}", f"--max_windows={args.max_windows}",
           "--timeout_ms=60000", "--csv=-",
           f"--metrics_url=http://127.0.0.1:{server.metrics_port}/metrics"] + flags
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr}")
    row = next(csv.DictReader(io.StringIO(out.stdout[out.stdout.index("mode,load"):])))
    # Engine time per request: per execution over the mean batch.
    batch = float(row["server_batch"]) or float("nan")
    row["compute_per_request_ms"] = float(row["server_compute_ms"]) / batch
    return row


def identical_outputs(args, server):
    """Whether `sepconv-client infer` writes the same .npy bytes both ways."""
    with tempfile.TemporaryDirectory(prefix="shm_bench_") as tmp:
        paths = []
        for name, flags in PATHS.items():
            path = os.path.join(tmp, f"{len(paths)}.npy")
            subprocess.run([client(args), "infer", f"--server=127.0.0.1:{server.port}",
                            f"--shape={args.shape}", "--seed=7", f"--output={path}"] + flags,
                           check=True, capture_output=True, timeout=120)
            paths.append(path)
        return filecmp.cmp(paths[0], paths[1], shallow=False)


def median(rows, key):
    values = [float(r[key]) for r in rows]
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        match = re.search(r"model name\s*:\s*(.*)", f.read())
    return match.group(1) if match else "?"


def report(args, server, results, levels, isa, load, identical):
    print(f"{os.uname().nodename}: {cpu_model()}, {os.cpu_count()} CPUs "
          f"({len(os.sched_getaffinity(0))} usable); oneDNN ISA {isa}; server "
          f"{server.instances} instance(s) x {server.threads} thread(s); {args.shape} FP32, "
          f"closed loop over 127.0.0.1, medians of {args.rounds} rounds; load average "
          f"{load[0]:.1f} at start, {load[1]:.1f} at end; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    header = ["path", "clients", "infer/s", "p50 ms", "p99 ms", "compute ms/req", "batch",
              "engine limit/s"]
    table, figures = [], {}
    for name in PATHS:
        for c in levels:
            rows = results[(name, c)]
            f = {k: median(rows, k) for k in ("infer_per_sec", "samples_per_sec", "p50_ms",
                                               "p99_ms", "compute_per_request_ms",
                                               "server_batch")}
            f["limit"] = 1e3 / f["compute_per_request_ms"]
            figures[(name, c)] = f
            table.append([name, str(c), f"{f['infer_per_sec']:.0f}", f"{f['p50_ms']:.3f}",
                          f"{f['p99_ms']:.3f}", f"{f['compute_per_request_ms']:.3f}",
                          f"{f['server_batch']:.2f}", f"{f['limit']:.0f}"])
    print_table(header, table, args.markdown)
    shm, raw = "system shared memory", "gRPC raw"
    print("\ngoals:")
    if 1 in levels:
        for name in PATHS:
            f = figures[(name, 1)]
            bound = f["compute_per_request_ms"] + 0.15
            verdict = ("hit" if f["p50_ms"] <= bound else "miss") if name == shm else "(reference)"
            print(f"  1 client, {name}: p50 {f['p50_ms']:.3f} ms vs compute "
                  f"{f['compute_per_request_ms']:.3f} + 0.15 = {bound:.3f} ms: {verdict}")
    top = max(levels)
    if top > 1:
        s, r = figures[(shm, top)], figures[(raw, top)]
        ratio = s["infer_per_sec"] / r["infer_per_sec"]
        of_limit = s["samples_per_sec"] / s["limit"]
        hit = ratio >= 2 or of_limit >= 0.9
        print(f"  {top} clients: shared memory {s['infer_per_sec']:.0f} infer/s = {ratio:.2f}x "
              f"raw ({r['infer_per_sec']:.0f}; goal >= 2x), {100 * of_limit:.0f}% of the engine "
              f"limit {s['limit']:.0f}/s (goal >= 90%): {'hit' if hit else 'miss'}")
    print(f"  outputs bit-identical (sepconv-client infer, raw vs shared memory, .npy): "
          f"{'yes' if identical else 'NO'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="CMake build dir with the binaries")
    parser.add_argument("--shape", default="1,32,56,56")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    parser.add_argument("--warmup_ms", type=int, default=1000)
    parser.add_argument("--window_ms", type=int, default=1000)
    parser.add_argument("--max_windows", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    isa = onednn_isa(args)
    start_load = os.getloadavg()[0]
    results = {(name, c): [] for name in PATHS for c in levels}
    errors = 0
    server = Server(args.build)
    try:
        identical = identical_outputs(args, server)
        for round_ in range(args.rounds):
            order = list(PATHS) if round_ % 2 == 0 else list(reversed(PATHS))
            for name in order:
                for c in levels:
                    print(f"round {round_ + 1}/{args.rounds}: {name}, {c} client(s) ...",
                          file=sys.stderr, flush=True)
                    row = bench(args, server, c, PATHS[name])
                    errors += int(row["error_count"])
                    results[(name, c)].append(row)
    finally:
        server.stop()
    report(args, server, results, levels, isa, (start_load, os.getloadavg()[0]), identical)
    print(f"failed requests: {errors}")
    print(f"rerun: /usr/bin/python3 tests/bench/shm_bench.py --build {args.build}")
    return 0 if errors == 0 and identical else 1


if __name__ == "__main__":
    sys.exit(main())
