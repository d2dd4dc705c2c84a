#!/usr/bin/python3
"""The engine benchmark that counts: what a request gets, through the server,
beside the engine in-process and the anchors, in one run, in one table.

  /usr/bin/python3 tests/bench/server_engine_bench.py [--build_dir build]
      [--threads 1,2] [--cases REGEX] [--window_ms 500] [--windows 5]
      [--markdown] [--json FILE]

Builds nothing: sepconv-server, sepconv-client and engine_bench must exist in
the build dir; tests/bench/xnnpack_bench is optional (its column says "n/a"
without it).

Cases (engine_bench's names): the seed's separableconv(Cin, Cout, stride 1)
(DW 3x3 pad 1 + bias, PW 1x1 + bias) at the foundation issue's six shapes,
and the MobileNet-v1 body (13 separable blocks with ReLU) at N=1 and 8.
torch_bench.py's modules are exported once to ONNX the way
tests/models/export_models.py does (opset 13, dynamic batch and spatial axes)
into a temporary model repository, one model per layer stack (sep_32_64,
sep_128_128, sep_512_512, mobilenet_body), without config.pbtxt: each model
takes the server's flags, and --max_batch_size=0 turns batching off, so any N
is one execution of one request.

For each T in --threads, one `sepconv-server --threads=T` on 127.0.0.1
serves every model, and engine_bench measures the roofline at T threads
(peak: a large oneDNN 1x1 convolution; bandwidth: a 256 MiB copy; best
iterations). Then case by case, so that a row's columns see the same machine:
  in-process  engine_bench <case>/auto, median iteration; and again with
              --cold (caches flushed before every iteration, as a request
              finds them after the transport's traffic), so that
              server/cold is what the server adds to the engine's own time
              on the same cold caches;
  server      sepconv-client bench, one request at a time over gRPC (raw
              FP32): a warm-up run, then --windows runs of one window each.
              Around each run, /metrics' sepconv_compute_duration_seconds
              _sum and _count give the window's mean engine time per request
              (the histogram's buckets, 1-2.5-5 per decade, are too coarse
              for a median), and the client gives the window's end-to-end
              p50; the table shows the medians over the windows. A window is
              stretched to hold at least 5 requests;
  shm         the same with --shared_memory=system: the client puts the
              tensors in POSIX shared memory it registers with the server
              (started with --allow_shared_memory), so the requests carry no
              tensor bytes. Over gRPC, a request's 1.6 + 3.2 MB (1x32-64x112)
              are copied by the client, gRPC and the kernel on the same CPUs
              the engine runs on, and that work overlaps the engine's; with
              shared memory what is left of the server/in-process gap is the
              engine's own;
  PyTorch     torch_bench.py, the faster of its NCHW and channels_last
              medians; for the seed's cases also the standard convolution
              nn.Conv2d(Cin, Cout, 3, padding=1), timed the same way;
  XNNPACK     xnnpack_bench <case>, median iteration.
Ratios are against the server's compute ("ours"): "vs X" is X's time over
ours (> 1: we are faster); % roofline is max(FLOPs / peak, compulsory bytes /
bandwidth) over ours; r is ours over the standard convolution's time, and
share = (1/Cout + 1/9) / r is the part of the seed's promised saving (a
separable layer has 1/Cout + 1/9 of the standard convolution's FLOPs) that a
request gets. Geometric means last; then the server's compute at each T
against the first T; then the plan the server's tuner chose for each case
(its log line: the kernels and threads), which can differ from the one
engine_bench's own tuning chose for the in-process column.

The environment reaches every process: ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN
(the header names the ISA engine_bench saw dispatched). The client, gRPC and
the engine share the CPUs, as in a deployment on one machine. Other processes
skew every number (the load average is printed); on a loaded machine run it
at high priority in its own autogroup (as root):

  setsid sh -c 'echo -19 > /proc/self/autogroup; exec nice -n -19 \\
      /usr/bin/python3 tests/bench/server_engine_bench.py --markdown'
"""
import argparse
import collections
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
from export_models import export  # noqa: E402
from run_engine_bench import geomean, roofline, roofline_ms, run_engine, run_torch  # noqa: E402
from sepconv_testing import LoggedProcess, free_port, print_table, scrape_sums  # noqa: E402
from torch_bench import SeparableConv, mobilenet_body  # noqa: E402

SEED = ((32, 64, 112), (128, 128, 56), (512, 512, 14))
# Served model -> (PyTorch module factory, input channels).
MODELS = {f"sep_{c}_{o}": (lambda c=c, o=o: SeparableConv(c, o, 1), c) for c, o, _ in SEED}
MODELS["mobilenet_body"] = (mobilenet_body, 32)
# `cout` is set for the seed's cases only (r and share).
Case = collections.namedtuple("Case", "name model shape cout")
CASES = [Case(f"sepconv/{n}x{c}-{o}x{hw}", f"sep_{c}_{o}", (n, c, hw, hw), o)
         for n in (1, 16) for c, o, hw in SEED] + [
             Case(f"mobilenet_body/{n}x32x112", "mobilenet_body", (n, 32, 112, 112), None)
             for n in (1, 8)]
MIN_REQUESTS_PER_WINDOW = 5
COMPUTE = r"sepconv_compute_duration_seconds_(?:sum|count)"
# Binary -> its path under the build dir; xnnpack_bench may be missing.
BINARIES = {"server": "server/sepconv-server", "client": "client/sepconv-client",
            "engine": "tests/bench/engine_bench", "xnnpack": "tests/bench/xnnpack_bench"}


def snapshot(build_dir, into):
    """Copies of the binaries in `into` (None for a missing xnnpack_bench), so
    that a rebuild during the run does not mix two builds, and their mtimes."""
    paths, built = {}, {}
    for name, relative in BINARIES.items():
        source = os.path.join(build_dir, relative)
        if not os.path.exists(source):
            if name != "xnnpack":
                sys.exit(f"{source} missing: cmake --build {build_dir} --target "
                         f"{os.path.basename(relative)}")
            paths[name] = None
            continue
        paths[name] = shutil.copy2(source, os.path.join(into, os.path.basename(relative)))
        built[name] = time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(source)))
    return paths, built


def export_repository(root, models):
    """Writes root/<model>/1/model.onnx for each name in `models`."""
    torch.manual_seed(0)
    for name in models:
        make, in_ch = MODELS[name]
        export(make().eval(), os.path.join(root, name, "1", "model.onnx"), 13, in_ch,
               keep_batchnorm=False)


class Server(LoggedProcess):
    """sepconv-server on 127.0.0.1, batching off, serving `models` of `repository`."""

    def __init__(self, binary, repository, threads, models, env=None, flags=()):
        self.metrics_port = free_port()
        super().__init__([binary, "--address=127.0.0.1", f"--model_repository={repository}",
                          f"--threads={threads}", "--max_batch_size=0", "--http_port=0",
                          "--grpc_port=0", f"--metrics_port={self.metrics_port}",
                          "--allow_shared_memory", *flags],
                         "server_engine_bench_", env)
        try:
            self.port = self.wait_for_port(r"on gRPC port (\d+)")
            served = re.search(r"serving models \[([^\]]*)\]", self.text()).group(1).split(", ")
            if set(models) - set(served):
                raise RuntimeError(f"models {sorted(set(models) - set(served))} not served: "
                                   f"{self.text()}")
        except BaseException:
            self.stop()
            raise

    def compute_totals(self):
        """(sum in s, count) of sepconv_compute_duration_seconds over every
        model: only the model under test gets requests, so deltas are its own."""
        sums = scrape_sums(self.metrics_port, names=COMPUTE)
        return (sums.get("sepconv_compute_duration_seconds_sum", 0.0),
                sums.get("sepconv_compute_duration_seconds_count", 0.0))


def client_bench(client, server, case, window_ms, shm=False, concurrency=1):
    """One window of sepconv-client bench at `concurrency` (no warm-up), the
    tensors in the requests or (shm) in shared memory: its step."""
    run = subprocess.run(
        [client, "bench", f"--server=127.0.0.1:{server.port}", f"--model={case.model}",
         "--shape=" + ",".join(map(str, case.shape)), f"--concurrency={concurrency}",
         "--warmup_ms=0",
         f"--window_ms={round(window_ms)}", "--max_windows=1", "--timeout_ms=120000",
         "--json=-"] + (["--shared_memory=system"] if shm else []),
        capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"sepconv-client bench {case.name}: {run.stderr}")
    step = json.loads(run.stdout)["steps"][0]
    if step["errors"]:
        raise RuntimeError(f"sepconv-client bench {case.name}: errors {step['errors']}")
    return step


def warm_up(args, client, server, case, shm):
    """Warms `case` up; the window (ms) that holds MIN_REQUESTS_PER_WINDOW of
    its requests, at least --window_ms."""
    client_bench(client, server, case, 1, shm)  # the first requests plan (and tune) the shape
    start = time.monotonic()
    step = client_bench(client, server, case, args.warmup_ms, shm)
    # An upper bound: the client's start-up and its probe request are in it.
    request_ms = 1e3 * (time.monotonic() - start) / (step["requests"] + 1)
    return max(args.window_ms, MIN_REQUESTS_PER_WINDOW * request_ms)


def serve_case(args, client, server, case, shm=False):
    """The server's compute (median of window means), e2e p50 and p99
    (medians of the windows') for `case`, in ms, and the per-window figures;
    keys start with "shm_" for tensors in shared memory."""
    window_ms = warm_up(args, client, server, case, shm)
    means, p50s, p99s = [], [], []
    for _ in range(args.windows):
        before = server.compute_totals()
        step = client_bench(client, server, case, window_ms, shm)
        # The bench's first request (a probe) is not in step["requests"].
        after = server.compute_totals()
        for _ in range(40):
            if after[1] - before[1] >= step["requests"] + 1:
                break
            time.sleep(0.025)
            after = server.compute_totals()
        means.append(1e3 * (after[0] - before[0]) / (after[1] - before[1]))
        p50s.append(step["latency_ms"]["p50"])
        p99s.append(step["latency_ms"]["p99"])
    prefix = "shm_" if shm else ""
    return {f"{prefix}server_compute_ms": statistics.median(means),
            f"{prefix}e2e_p50_ms": statistics.median(p50s),
            f"{prefix}e2e_p99_ms": statistics.median(p99s),
            f"{prefix}window_compute_ms": means, f"{prefix}window_p50_ms": p50s}


def run_xnnpack(binary, case, threads, min_time):
    """xnnpack_bench's median ms for `case`, or None (no binary, no such case, failed)."""
    if binary is None:
        return None
    result = run_engine(binary, f"^{case.name}(/real_time)?$", threads, min_time,
                        required=False).get(case.name)
    return result["median_ms"] if result else None


def served_plan(server, case):
    """The kernels the server logged choosing for the case's image shape (its
    tuner's choice, which can differ from engine_bench's; one per image
    shape, whatever the batch), or "?"."""
    image = "x".join(map(str, case.shape[1:]))
    plans = re.findall(rf"model '{case.model}' version \d+, input \d+x{image}: "
                       r"(.*? on \d+ thread\(s\))", server.text())
    return plans[-1] if plans else "?"


def measure_case(args, bins, server, case, threads):
    """Every number of one row (ms unless named otherwise)."""
    # Google Benchmark's regex takes no "\-": the names need no escaping.
    pattern = f"^{case.name}/auto/real_time$"
    ours = run_engine(bins["engine"], pattern, threads, args.min_time)[f"{case.name}/auto"]
    cold = run_engine(bins["engine"], pattern, threads, args.min_time,
                      extra=["--cold"])[f"{case.name}/auto"]
    row = {"in_process_ms": ours["median_ms"], "cold_in_process_ms": cold["median_ms"],
           "in_process_plan": ours.get("label", "?").removeprefix("chose "),
           "cold_in_process_plan": cold.get("label", "?").removeprefix("chose "),
           "flops": ours["flops"], "min_bytes": ours["min_bytes"]}
    row.update(serve_case(args, bins["client"], server, case))
    row.update(serve_case(args, bins["client"], server, case, shm=True))
    row["served_plan"] = served_plan(server, case)
    t = run_torch(f"^{re.escape(case.name)}$", threads, args.min_time, ["--standard_conv"])
    t = t[case.name]
    row["torch_best_ms"] = min(t["median_ms"], t["channels_last_median_ms"])
    if case.cout:
        row["torch_standard_conv_ms"] = min(t["standard_median_ms"],
                                            t["standard_channels_last_median_ms"])
    row["xnnpack_ms"] = run_xnnpack(bins["xnnpack"], case, threads, args.min_time)
    return row


def measure(args, bins, repository, threads, cases):
    """Roofline and every case at `threads` threads, with one server for all."""
    engine = run_engine(bins["engine"], "^roofline/", threads, args.min_time)
    peak, bandwidth = roofline(engine)
    result = {"onednn_isa": engine["_isa"], "peak_gflops": peak * 1e-9,
              "bandwidth_gbps": bandwidth * 1e-9, "load_start": os.getloadavg()[0], "cases": {}}
    server = Server(bins["server"], repository, threads, sorted({c.model for c in cases}))
    try:
        for case in cases:
            print(f"T={threads}: {case.name} ...", file=sys.stderr, flush=True)
            row = measure_case(args, bins, server, case, threads)
            row["roofline_ms"] = roofline_ms(row, peak, bandwidth)
            result["cases"][case.name] = row
    finally:
        server.stop()
    result["load_end"] = os.getloadavg()[0]
    return result


def ms(value):
    return "n/a" if value is None else f"{value:.3f}"


def times(value):
    return "n/a" if value is None else f"{value:.2f}x"


def percent(value):
    return "n/a" if value is None else f"{100 * value:.0f}%"


def ratio(a, b):
    return None if a is None or b is None else a / b


def case_table(cases, rows):
    """The per-T table: header and rows (strings), geometric means last."""
    header = ["case", "in-process ms", "cold in-process ms", "server compute ms",
              "server/in-process", "server/cold", "e2e p50 ms",
              "shm compute ms", "shm e2e p50 ms", "PyTorch-best ms", "XNNPACK ms", "vs XNNPACK",
              "shm vs XNNPACK", "vs PyTorch", "% roofline", "r", "share"]
    table, columns = [], collections.defaultdict(list)
    for case in cases:
        row = rows[case.name]
        ours = row["server_compute_ms"]
        r = ratio(ours, row.get("torch_standard_conv_ms"))
        derived = {"server/in-process": ours / row["in_process_ms"],
                   "server/cold": ours / row["cold_in_process_ms"],
                   "vs XNNPACK": ratio(row["xnnpack_ms"], ours),
                   "shm vs XNNPACK": ratio(row["xnnpack_ms"], row["shm_server_compute_ms"]),
                   "vs PyTorch": row["torch_best_ms"] / ours,
                   "% roofline": row["roofline_ms"] / ours, "r": r,
                   "share": ratio(1 / case.cout + 1 / 9, r) if r else None}
        for key, value in derived.items():
            if value is not None:
                columns[key].append(value)
        table.append([case.name, ms(row["in_process_ms"]), ms(row["cold_in_process_ms"]),
                      ms(ours), times(derived["server/in-process"]),
                      times(derived["server/cold"]), ms(row["e2e_p50_ms"]),
                      ms(row["shm_server_compute_ms"]), ms(row["shm_e2e_p50_ms"]),
                      ms(row["torch_best_ms"]), ms(row["xnnpack_ms"]),
                      times(derived["vs XNNPACK"]), times(derived["shm vs XNNPACK"]),
                      times(derived["vs PyTorch"]),
                      percent(derived["% roofline"]), f"{r:.2f}" if r else "n/a",
                      percent(derived["share"])])
    mean = {k: geomean(v) if v else None for k, v in columns.items()}
    table.append(["geometric mean", "", "", "", times(mean.get("server/in-process")),
                  times(mean.get("server/cold")), "", "", "", "",
                  "", times(mean.get("vs XNNPACK")), times(mean.get("shm vs XNNPACK")),
                  times(mean.get("vs PyTorch")),
                  percent(mean.get("% roofline")),
                  f"{mean['r']:.2f}" if mean.get("r") else "n/a", percent(mean.get("share"))])
    return header, table


def threads_table(cases, results):
    """Server compute at each T against the first T (and with shared memory,
    and in-process, to compare)."""
    first, rest = results[0], results[1:]
    keys = ("server_compute_ms", "shm_server_compute_ms", "in_process_ms")
    names = {"server_compute_ms": "server", "shm_server_compute_ms": "shm",
             "in_process_ms": "in-process"}
    header = ["case"] + [f"server T={t} ms" for t, _ in results] + [
        f"{names[key]} T{t}/T{first[0]}" for key in keys for t, _ in rest]
    table, columns = [], collections.defaultdict(list)
    for case in cases:
        base = first[1]["cases"][case.name]
        row = [case.name] + [ms(r["cases"][case.name]["server_compute_ms"]) for _, r in results]
        for key in keys:
            for t, r in rest:
                value = r["cases"][case.name][key] / base[key]
                columns[(key, t)].append(value)
                row.append(f"{value:.2f}")
        table.append(row)
    table.append(["geometric mean"] + [""] * len(results) + [
        f"{geomean(columns[(key, t)]):.2f}" for key in keys for t, _ in rest])
    return header, table


def cpu_model():
    with open("/proc/cpuinfo") as f:
        match = re.search(r"model name\s*:\s*(.*)", f.read())
    return match.group(1) if match else "?"


def report(args, cases, results, built):
    """Prints the header, one table per T and the threads table."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"{cpu_model()}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable); "
          f"oneDNN ISA {results[0][1]['onednn_isa']}"
          + (f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else "")
          + f"; PyTorch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "built (UTC): " + ", ".join(f"{name} {when}" for name, when in built.items()))
    print("fp32, NCHW in and out. Server: --max_batch_size=0, one request at a time over gRPC "
          "on 127.0.0.1; server compute = median over windows of the window's mean engine time "
          "per request (/metrics _sum/_count: a mean, not a median); e2e p50 = median over "
          "windows of the client's p50; shm: the same with the tensors in POSIX shared memory "
          "(sepconv-client --shared_memory=system), so that no tensor bytes are copied through "
          "gRPC and the kernel on the CPUs the engine runs on. In-process, PyTorch-best (faster "
          "of NCHW and channels_last) and XNNPACK: median iterations. Ratios against the server "
          "compute; vs X = X / ours.")
    if cap:
        print(f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN; XNNPACK picks its own ISA.")
    if "xnnpack" not in built:
        print("XNNPACK: n/a, tests/bench/xnnpack_bench is not built "
              f"(cmake --build {args.build_dir} --target xnnpack_bench).")
    else:
        missing = sorted({c for _, r in results for c, row in r["cases"].items()
                          if row["xnnpack_ms"] is None})
        if missing:
            print(f"XNNPACK: n/a where xnnpack_bench gave no result: {', '.join(missing)}.")
    for t, result in results:
        print(f"\nT={t} threads; load average {result['load_start']:.2f} at start, "
              f"{result['load_end']:.2f} at end; peak {result['peak_gflops']:.1f} GFLOP/s, "
              f"bandwidth {result['bandwidth_gbps']:.1f} GB/s")
        print_table(*case_table(cases, result["cases"]), args.markdown)
    if len(results) > 1:
        print("\nthreads: server compute (and in-process) time ratios, < 1 is a speed-up")
        print_table(*threads_table(cases, results), args.markdown)
    print("\nthe plans the server's tuner chose (its log line), and engine_bench's own "
          "tunings' (warm and --cold runs, each in a process of its own)")
    print_table(["case", "T", "server's plan", "in-process", "cold in-process"],
                [[c.name, str(t), r["cases"][c.name].get("served_plan", "?"),
                  r["cases"][c.name].get("in_process_plan", "?"),
                  r["cases"][c.name].get("cold_in_process_plan", "?")]
                 for c in cases for t, r in results], args.markdown)


def add_serving_args(parser, window_ms, windows, warmup_ms):
    """--cases, --window_ms, --windows, --warmup_ms and --markdown, as
    serve_case and the benches built on it read them."""
    parser.add_argument("--cases", default="", help="regex on case names")
    parser.add_argument("--window_ms", type=float, default=window_ms,
                        help="server measurement window, at least")
    parser.add_argument("--windows", type=int, default=windows, help="server windows per case")
    parser.add_argument("--warmup_ms", type=float, default=warmup_ms,
                        help="server warm-up per case")
    parser.add_argument("--markdown", action="store_true")


def cases_matching(parser, pattern):
    """The CASES whose names match `pattern` (--cases); none is an error."""
    cases = [c for c in CASES if re.search(pattern, c.name)]
    if not cases:
        parser.error(f"--cases {pattern!r} matches none of {[c.name for c in CASES]}")
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    add_serving_args(parser, window_ms=500, windows=5, warmup_ms=300)
    parser.add_argument("--min_time", type=float, default=0.5,
                        help="seconds per case of engine_bench, torch_bench, xnnpack_bench")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    cases = cases_matching(parser, args.cases)

    with tempfile.TemporaryDirectory(prefix="server_engine_bench_") as tmp:
        bins, built = snapshot(args.build_dir, tmp)
        repository = os.path.join(tmp, "repository")
        export_repository(repository, sorted({c.model for c in cases}))
        results = [(t, measure(args, bins, repository, t, cases)) for t in thread_counts]
    report(args, cases, results, built)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "cpus": os.cpu_count(),
                       "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                       "built": built, "args": vars(args), "threads": dict(results)}, f, indent=1)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"\nrerun: {f'ONEDNN_MAX_CPU_ISA={cap} ' if cap else ''}/usr/bin/python3 "
          f"{shlex.join(sys.argv)}")


if __name__ == "__main__":
    main()
