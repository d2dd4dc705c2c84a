#!/usr/bin/python3
"""Runs the engine benchmark beside PyTorch in one go and prints one table.

  tests/bench/run_engine_bench.py [--build_dir build] [--suite issue2|dm|all]
                                  [--layouts auto|all] [--baseline BINARY] [--markdown]

Builds nothing: engine_bench must exist in the build dir (cmake --build
<dir> --target engine_bench). For every case it prints our median time
(NCHW in and out, conversions included), PyTorch's medians on the same shape
in NCHW and in channels_last (conversions included, glibc's allocator kept
warm: see torch_bench.py), the faster of the two ("best"), the speed-up
against it, the same from best iterations (minima), and, when the roofline
was measured (suite "all"), the roofline time max(FLOPs / peak, compulsory
bytes / bandwidth) and the percentage of it we reach; geometric means last.
The header names the ISA oneDNN dispatched to (ONEDNN_MAX_CPU_ISA caps it),
the peak (a large oneDNN 1x1 convolution) and the bandwidth (256 MiB copy). With --baseline (another
build of engine_bench, e.g. from an older commit) it also times that binary
on every case, interleaved, and prints its median and our speed-up over it.
Medians (and minima) are of per-iteration times; the machine's load is
printed since other processes skew them. On a loaded machine run it at high
priority in its own autogroup (as root):

  setsid sh -c 'echo -19 > /proc/self/autogroup; exec nice -n -19 \
      tests/bench/run_engine_bench.py --build_dir build-engine'
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import print_table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAYOUTS = ("auto", "nhwc", "nChw8c", "nChw16c", "nhwc_direct")
TORCH_CASES = [f"sepconv/{n}x{c}-{o}x{hw}" for n in (1, 16)
               for c, o, hw in ((32, 64, 112), (128, 128, 56), (512, 512, 14))] + [
                   f"mobilenet_body/{n}x32x112" for n in (1, 8)] + [
                   f"sepconv_dm/{n}x24-40x56_k5s2dm{dm}"
                   for n, dm in ((1, 1), (1, 2), (1, 3), (16, 2))]
SUITES = {"issue2": r"sepconv/", "dm": r"sepconv_dm/",
          "all": r"(sepconv|mobilenet_body|sepconv_dm)/"}


def run_engine(binary, pattern, threads, min_time, required=True, extra=()):
    """Benchmarks matching `pattern` (a Google Benchmark binary taking --threads),
    by name without "/real_time", plus "_isa" (the JSON context's onednn_isa).
    A baseline (required=False) may lack some, fail or print no JSON: those
    are left out. `extra`: more of the binary's flags (e.g. --cold)."""
    run = subprocess.run(
        [binary, f"--benchmark_filter={pattern}", "--benchmark_format=json",
         f"--benchmark_min_time={min_time}", f"--threads={threads}", *extra],
        check=required, capture_output=True, text=True)
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        if required:
            raise
        return {}
    results = {"_isa": doc["context"].get("onednn_isa", "?")}
    for b in doc["benchmarks"]:
        if "error_message" in b:
            if required:
                sys.exit(f"{binary}: {b['name']}: {b['error_message']}")
            continue
        results[re.sub(r"/real_time$", "", b["name"])] = b
    return results


def run_torch(pattern, threads, min_time, extra=()):
    """torch_bench.py's results by case name; `extra`: more of its flags."""
    out = subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"), f"--threads={threads}",
         f"--min_time={min_time}", f"--filter={pattern}", *extra],
        check=True, capture_output=True, text=True).stdout
    return {r["name"]: r for r in json.loads(out)}


def roofline(engine):
    """(peak FLOP/s, bandwidth B/s) from engine_bench's roofline/ results in
    `engine`, or (None, None) when they were not run. The machine's
    capability: its best observed iterations, not medians."""
    if "roofline/peak_conv1x1_1024x32" not in engine:
        return None, None
    b = engine["roofline/peak_conv1x1_1024x32"]
    c = engine["roofline/copy_256MiB"]
    return b["flops"] / (b["min_ms"] * 1e-3), c["bytes"] / (c["min_ms"] * 1e-3)


def roofline_ms(case, peak, bandwidth):
    """max(FLOPs / peak, compulsory bytes / bandwidth) of an engine_bench case, in ms."""
    return max(case["flops"] / peak, case["min_bytes"] / bandwidth) * 1e3


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--suite", choices=tuple(SUITES), default="all",
                        help="issue2: the six seed shapes; dm: a block with depth multiplier "
                        "1-3; all: both + MobileNet body + roofline")
    parser.add_argument("--layouts", choices=("auto", "all"), default="auto",
                        help="all: also time each internal layout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min_time", type=float, default=1.0, help="seconds per case")
    parser.add_argument("--baseline", help="another engine_bench binary to compare with")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    binary = os.path.join(args.build_dir, "tests", "bench", "engine_bench")
    if not os.path.exists(binary):
        sys.exit(f"{binary} missing: cmake --build {args.build_dir} --target engine_bench")
    cases = SUITES[args.suite]
    layouts = LAYOUTS if args.layouts == "all" else ("auto",)

    load = os.getloadavg()[0]
    # Case by case, ours then PyTorch's, so both see the same machine state.
    case_names = [n for n in TORCH_CASES if re.search(f"^{cases}", n)]
    engine, torch, baseline = {}, {}, {}
    if args.suite == "all":
        engine.update(run_engine(binary, "^roofline/", args.threads, args.min_time))
    for name in case_names:
        pattern = f"^{name}/({'|'.join(layouts)})(/real_time)?$"
        engine.update(run_engine(binary, pattern, args.threads, args.min_time))
        if args.baseline:
            baseline.update(
                run_engine(args.baseline, pattern, args.threads, args.min_time, required=False))
        torch.update(run_torch(f"^{re.escape(name)}$", args.threads, args.min_time))

    peak, bandwidth = roofline(engine)

    header = ["case (N, Cin-Cout x H=W)", "ours ms", "torch NCHW ms", "torch CL ms",
              "torch best ms", "speed-up", "GFLOP/s", "ours min", "torch best min", "speed-up (min)"]
    if peak:
        header += ["roofline ms", "% roofline"]
    if args.layouts == "all":
        header += [f"{l} ms" for l in LAYOUTS[1:]]
    if args.baseline:
        header += ["baseline ms", "vs baseline"]
    rows, speedups, min_speedups, fractions, gains = [], [], [], [], []
    for name in case_names:
        ours = engine.get(f"{name}/auto")
        if ours is None:
            continue
        t = torch[name]
        ms = ours["median_ms"]
        theirs = min(t["median_ms"], t["channels_last_median_ms"])
        theirs_min = min(t["min_ms"], t["channels_last_min_ms"])
        speedups.append(theirs / ms)
        min_speedups.append(theirs_min / ours["min_ms"])
        row = [name, f"{ms:.3f}", f"{t['median_ms']:.3f}", f"{t['channels_last_median_ms']:.3f}",
               f"{theirs:.3f}", f"{theirs / ms:.2f}x", f"{ours['flops'] / (ms * 1e-3) * 1e-9:.1f}",
               f"{ours['min_ms']:.3f}", f"{theirs_min:.3f}", f"{theirs_min / ours['min_ms']:.2f}x"]
        if peak:
            roof_ms = roofline_ms(ours, peak, bandwidth)
            fractions.append(roof_ms / ms)
            row += [f"{roof_ms:.3f}", f"{100 * roof_ms / ms:.0f}%"]
        if args.layouts == "all":
            row += [f"{engine[f'{name}/{l}']['median_ms']:.3f}" for l in LAYOUTS[1:]]
        if args.baseline:
            old = baseline.get(f"{name}/auto")
            if old:
                gains.append(old["median_ms"] / ms)
                row += [f"{old['median_ms']:.3f}", f"{old['median_ms'] / ms:.1f}x"]
            else:
                row += ["-", "-"]
        rows.append(row)
    summary = ["geometric mean", "", "", "", "", f"{geomean(speedups):.2f}x", "", "", "",
               f"{geomean(min_speedups):.2f}x"]
    if peak:
        summary += ["", f"{100 * geomean(fractions):.0f}%"]
    if args.layouts == "all":
        summary += [""] * (len(LAYOUTS) - 1)
    if args.baseline:
        summary += ["", f"{geomean(gains):.1f}x"]
    rows.append(summary)

    print(f"fp32, {args.threads} threads, NCHW in and out; medians of per-iteration times; "
          f"load average at start {load:.2f} (end {os.getloadavg()[0]:.2f}) on "
          f"{os.cpu_count()} CPUs; oneDNN ISA {engine.get('_isa', '?')}; PyTorch NCHW and "
          "channels_last (CL) with mallopt(M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=256 MiB)")
    if peak:
        print(f"measured peak {peak * 1e-9:.1f} GFLOP/s (oneDNN 1x1 conv 1024->1024 on 32x32), "
              f"bandwidth {bandwidth * 1e-9:.1f} GB/s (256 MiB copy, read + write); "
              "best iterations")
    print_table(header, rows, args.markdown)


if __name__ == "__main__":
    main()
