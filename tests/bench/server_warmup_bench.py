#!/usr/bin/python3
"""The first request after load against warm ones, in the server's own
request time, without and with model_warmup, in one run.

  /usr/bin/python3 tests/bench/server_warmup_bench.py [--build_dir build]
      [--rounds 5] [--warm_requests 10] [--markdown]

For each round and each config (a 3-layer separable model, 32->64->64->32,
on 1x32x112x112; one config with a model_warmup sample of that shape at
batch 1), it starts a fresh sepconv-server on a temporary repository, waits
until the model is served (with warm-up: after its plans were built and
tuned), then sends one request with `sepconv-client infer` ("first") and
--warm_requests more, one at a time ("warm"). Each request is a new client
process and connection, the first as the others. Around each, /metrics'
sepconv_request_duration_seconds _sum/_count (from the request's arrival in
the core to its answer) and sepconv_compute_duration_seconds give the
server's own time: the first request's, and the mean of the warm ones; and
the server's minor page faults (/proc/PID/stat) in the first request and
per warm one, with the scrapes' own. The
table shows medians over rounds and first / warm. The goal (issue 22): with
warm-up, the first request within 20% of a warm one (first / warm <= 1.2).
Speed is reported, never asserted; the machine's load is printed.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
from sepconv_testing import LoggedProcess, free_port, print_table, scrape_sums  # noqa: E402

SHAPE = (1, 32, 112, 112)
CONFIG = """name: "sep3"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 32, -1, -1 ] } ]
sepconv {
  seed: 0
  layers { in_channels: 32 out_channels: 64 }
  layers { in_channels: 64 out_channels: 64 }
  layers { in_channels: 64 out_channels: 32 }
}
"""
WARMUP = """model_warmup [ {
  name: "served shape"
  batch_size: 1
  inputs { key: "input" value: { data_type: TYPE_FP32 dims: [ 32, 112, 112 ] zero_data: true } }
} ]
"""
METRICS = r"sepconv_(request|compute)_duration_seconds_(sum|count)"


def totals(metrics_port):
    sums = scrape_sums(metrics_port, names=METRICS)
    return {kind: (sums.get(f"sepconv_{kind}_duration_seconds_sum", 0.0),
                   sums.get(f"sepconv_{kind}_duration_seconds_count", 0.0))
            for kind in ("request", "compute")}


def mean_ms(before, after, kind):
    """The mean of `kind` over the requests between two totals(), in ms."""
    (s0, c0), (s1, c1) = before[kind], after[kind]
    if c1 <= c0:
        raise RuntimeError(f"no {kind} recorded between the scrapes")
    return 1e3 * (s1 - s0) / (c1 - c0)


def infer(client, port):
    subprocess.run([client, "infer", f"--server=127.0.0.1:{port}", "--model=sep3",
                    "--shape=" + ",".join(map(str, SHAPE)), "--timeout_ms=60000"],
                   check=True, capture_output=True, text=True, timeout=120)


def minor_faults(pid):
    """The process's minor page faults so far (/proc/PID/stat field 10)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def one_round(args, warm):
    """(first request ms, warm mean ms, first compute ms, warm compute ms,
    the server's minor page faults in the first request, per warm request)."""
    repo = tempfile.mkdtemp(prefix="server_warmup_bench_")
    os.makedirs(os.path.join(repo, "sep3", "1"))
    with open(os.path.join(repo, "sep3", "config.pbtxt"), "w") as f:
        f.write(CONFIG + (WARMUP if warm else ""))
    metrics_port = free_port()
    server = LoggedProcess(
        [os.path.join(args.build_dir, "server", "sepconv-server"), "--address=127.0.0.1",
         "--grpc_port=0", "--http_port=0", f"--metrics_port={metrics_port}",
         f"--model_repository={repo}"], "server_warmup_bench_")
    client = os.path.join(args.build_dir, "client", "sepconv-client")
    try:
        port = server.wait_for_port(r"on gRPC port (\d+)")
        pid = server.proc.pid
        start, faults_start = totals(metrics_port), minor_faults(pid)
        infer(client, port)
        first, faults_first = totals(metrics_port), minor_faults(pid)
        for _ in range(args.warm_requests):
            infer(client, port)
        last, faults_last = totals(metrics_port), minor_faults(pid)
        # The scrapes' own faults (the metrics thread) are in both counts.
        return (mean_ms(start, first, "request"), mean_ms(first, last, "request"),
                mean_ms(start, first, "compute"), mean_ms(first, last, "compute"),
                faults_first - faults_start, (faults_last - faults_first) / args.warm_requests)
    finally:
        server.stop()
        shutil.rmtree(repo, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rounds", type=int, default=5, help="fresh servers per config")
    parser.add_argument("--warm_requests", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = {False: [], True: []}
    for _ in range(args.rounds):
        for warm in (False, True):  # interleaved: a burst of load hits both alike
            results[warm].append(one_round(args, warm))
    rows = []
    for warm in (False, True):
        first, steady, first_compute, steady_compute, first_faults, steady_faults = (
            statistics.median(column) for column in zip(*results[warm]))
        rows.append(["with" if warm else "without", f"{first:.2f}", f"{steady:.2f}",
                     f"{first / steady:.2f}x", f"{first_compute:.2f}", f"{steady_compute:.2f}",
                     f"{first_compute / steady_compute:.2f}x", f"{first_faults:.0f}",
                     f"{steady_faults:.0f}"])
    print(f"sep3 (32->64->64->32) at {'x'.join(map(str, SHAPE))}; medians of {args.rounds} "
          f"rounds, {args.warm_requests} warm requests each; load average {load:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    print_table(["model_warmup", "first request ms", "warm request ms", "first/warm",
                 "first compute ms", "warm compute ms", "compute first/warm",
                 "first page faults", "warm page faults"], rows,
                args.markdown)
    print(f"\nrerun: /usr/bin/python3 tests/bench/server_warmup_bench.py "
          f"--rounds {args.rounds} --warm_requests {args.warm_requests}")


if __name__ == "__main__":
    main()
