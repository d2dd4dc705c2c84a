#!/usr/bin/python3
"""Latency while poll mode rolls out a new model version, without and with
model_warmup, in one run.

For each of the two configs (the same separable model, 32->64 on variable
spatial dims; one of them with a model_warmup sample of 1x32x56x56) it
starts sepconv-server in poll mode (--repository_poll_secs=1) on a temporary
repository holding version 1, then runs `sepconv-client bench` (closed loop,
--concurrency, 1x32x56x56) twice: a steady step, and a step during which
version 2 is added (--rollout_after_ms into the step), which the server
loads (warmed first when the config says so) and swaps in. The table gives
p50, p99 and max of each step and whether version 2 was serving at its end.
Without warm-up version 2's first requests build and tune their plans; with
it they should not, so its rollout step looks like the steady one. Speed is
reported, never asserted; the machine's load is printed.

  /usr/bin/python3 tests/bench/rollout_bench.py --build build
"""
import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import service_bench  # noqa: E402  (Process: a server on 127.0.0.1 and its log)

CONFIG = """name: "sepconv"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 32, -1, -1 ] } ]
sepconv { seed: 0 layers { in_channels: 32 out_channels: 64 } }
"""
WARMUP = """model_warmup [ {
  name: "default shape"
  batch_size: 1
  inputs { key: "input" value: { data_type: TYPE_FP32 dims: [ 32, 56, 56 ] zero_data: true } }
} ]
"""


def bench(args, port):
    cmd = [os.path.join(args.build, "client", "sepconv-client"), "bench",
           f"--server=127.0.0.1:{port}", f"--shape={args.shape}",
           f"--concurrency={args.concurrency}", "--warmup_ms=500",
           f"--window_ms={args.window_ms}", f"--max_windows={args.windows}",
           "--stability_pct=0.0001", "--timeout_ms=60000", "--csv=-"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    return next(csv.DictReader(io.StringIO(out[out.index("mode,load"):])))


def run(args, warm):
    repo = tempfile.mkdtemp(prefix="rollout_bench_")
    model = os.path.join(repo, "sepconv")
    os.makedirs(os.path.join(model, "1"))
    with open(os.path.join(model, "config.pbtxt"), "w") as f:
        f.write(CONFIG + (WARMUP if warm else ""))
    server = service_bench.Process(
        [os.path.join(args.build, "server", "sepconv-server"), "--address=127.0.0.1",
         "--grpc_port=0", "--http_port=0", f"--metrics_port={service_bench.free_port()}",
         f"--model_repository={repo}", "--model_control_mode=poll",
         "--repository_poll_secs=1", "--exit_timeout_secs=10"],
        r"on gRPC port (\d+)")
    try:
        steady = bench(args, server.port)
        timer = threading.Timer(args.rollout_after_ms / 1000,
                                lambda: os.makedirs(os.path.join(model, "2")))
        timer.start()
        rollout = bench(args, server.port)
        timer.join()
        time.sleep(0.5)
        served = "serving model 'sepconv' version 2" in server.text()
        return steady, rollout, served
    finally:
        server.stop()
        shutil.rmtree(repo, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build", help="CMake build dir with the binaries")
    parser.add_argument("--shape", default="1,32,56,56")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--window_ms", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=4,
                        help="windows per step, all run (the stability threshold is too tight "
                        "to end a step early)")
    parser.add_argument("--rollout_after_ms", type=int, default=1500,
                        help="version 2 appears this long after the rollout step starts")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    for warm in (False, True):
        print(f"{'with' if warm else 'without'} model_warmup ...", file=sys.stderr, flush=True)
        steady, rollout, served = run(args, warm)
        for step, row in (("steady", steady), ("rollout to version 2", rollout)):
            rows.append(["with" if warm else "without", step, row["requests"],
                         f"{float(row['p50_ms']):.3f}", f"{float(row['p99_ms']):.3f}",
                         f"{float(row['max_ms']):.3f}",
                         ("yes" if served else "NO") if step != "steady" else ""])
    print(f"sepconv-server, poll mode (1 s), model 32->64 on {args.shape}, closed loop at "
          f"concurrency {args.concurrency}, {args.windows} x {args.window_ms} ms per step; load "
          f"average at start {load:.2f} (end {os.getloadavg()[0]:.2f}) on {os.cpu_count()} CPUs")
    print("| model_warmup | step | requests | p50 ms | p99 ms | max ms | v2 serving |")
    print("|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
