#!/usr/bin/python3
"""First request after load vs a warm request, without and with warm-up.

  tests/bench/run_warmup_bench.py [--build_dir build] [--cases REGEX] [--min_time S]

Runs engine_bench's first_request/ benchmarks (engine_bench must exist:
cmake --build <dir> --target engine_bench) and prints one table. Each
iteration forgets the tuned choices (a fresh process's state), creates an
executor of the case's model ("load": Executor::Create, which with warm-up
builds and tunes the plans of the warmed shape, what a config's model_warmup,
the built-in model's 1x32x56x56 warm-up or a fixed-shape config does before
the version is served), runs one request of the case's shape ("first") and
then 9 more (their median is "warm"). Columns are medians over iterations.
The goal: with warm-up, first within 20% of warm (first / warm <= 1.2).
In-process, so the figures are the engine's (no gRPC); the machine's load is
printed since other processes skew them.
"""
import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import print_table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--cases", default=r"(sepconv/1x|mobilenet_body/1x)",
                        help="regex over the case names (after first_request/)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min_time", type=float, default=2.0, help="seconds per benchmark")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    binary = os.path.join(args.build_dir, "tests", "bench", "engine_bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} missing: cmake --build {args.build_dir} --target engine_bench")
    load = os.getloadavg()[0]
    out = subprocess.run(
        [binary, f"--benchmark_filter=^first_request/{args.cases}", "--benchmark_format=json",
         f"--benchmark_min_time={args.min_time}", f"--threads={args.threads}"],
        check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    results = {}
    for b in doc["benchmarks"]:
        name = re.sub(r"/real_time$", "", b["name"])[len("first_request/"):]
        case, mode = name.rsplit("/", 1)
        results.setdefault(case, {})[mode] = b
    header = ["case", "load ms", "first ms", "warm ms", "first/warm",
              "load ms (warm-up)", "first ms (warm-up)", "warm ms (warm-up)",
              "first/warm (warm-up)"]
    rows = []
    for case, modes in results.items():
        row = [case]
        for mode in ("cold", "warmed"):
            b = modes[mode]
            row += [f"{b['load_ms']:.1f}", f"{b['first_ms']:.2f}", f"{b['warm_ms']:.2f}",
                    f"{b['first_ms'] / b['warm_ms']:.2f}x"]
        rows.append(row)
    print(f"fp32, {args.threads} threads, in-process (Executor::Create + Run), medians over "
          f"iterations; oneDNN ISA {doc['context'].get('onednn_isa', '?')}; load average at "
          f"start {load:.2f} (end {os.getloadavg()[0]:.2f}) on {os.cpu_count()} CPUs")
    print_table(header, rows, args.markdown)

if __name__ == "__main__":
    main()
