#!/usr/bin/python3
"""Fresh servers with and without a tuning cache, side by side in one run.

  /usr/bin/python3 tests/bench/tuning_cache_bench.py [--build_dir build]
      [--cases REGEX] [--threads 2] [--rounds 6] [--markdown]

A fresh sepconv-server times each new input shape's candidate plans before
its first request (0.3-0.8 s per shape on a 2-vCPU EPYC) and, among
candidates within a few percent of each other, may pick a different one
every start. With --tuning_cache the first server's choices are kept in a
file and every later server builds them untimed. This bench primes a cache
with one server, then per round starts a fresh server without the cache and
one with it (the order alternating), each serving the seed's batch-1 cases
(one request at a time, batching off), and reports per case:
- the first request's time at the client (`sepconv-client infer`, its
  process start included; the plan is built, and without a cache timed,
  inside it);
- the server's compute per request afterwards (median of window means, as
  server_engine_bench.py), its median and spread over the rounds;
- how many different plans the rounds served.
Speed is reported, never asserted; the machine's load is printed.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
import server_engine_bench as engine  # noqa: E402
from server_ab_bench import onednn_isa  # noqa: E402
from sepconv_testing import print_table  # noqa: E402


def first_request_ms(client, server, case):
    """The client's time for one `sepconv-client infer` of `case`, in ms."""
    start = time.monotonic()
    subprocess.run([client, "infer", f"--server=127.0.0.1:{server.port}", f"--model={case.model}",
                    "--shape=" + ",".join(map(str, case.shape)), "--timeout_ms=120000"],
                   check=True, capture_output=True, text=True, timeout=300)
    return 1e3 * (time.monotonic() - start)


def one_server(args, binary, client, repository, cases, cache):
    """{case name: (first request ms, compute ms, plan)} for one fresh server."""
    server = engine.Server(binary, repository, args.threads, sorted({c.model for c in cases}),
                           flags=[f"--tuning_cache={cache}"] if cache else [])
    try:
        results = {}
        for case in cases:
            first = first_request_ms(client, server, case)
            served = engine.serve_case(args, client, server, case)
            results[case.name] = (first, served["server_compute_ms"],
                                  engine.served_plan(server, case))
        return results
    finally:
        server.stop()


def spread(values):
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    engine.add_serving_args(parser, window_ms=400, windows=3, warmup_ms=300)
    parser.set_defaults(cases="sepconv/1x")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="fresh servers of each kind")
    args = parser.parse_args()
    cases = engine.cases_matching(parser, args.cases)
    load = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="tuning_cache_bench_")
    try:
        bins, _ = engine.snapshot(args.build_dir, work)
        repository = os.path.join(work, "models")
        engine.export_repository(repository, sorted({c.model for c in cases}))
        cache = os.path.join(work, "tuning.tsv")
        one_server(args, bins["server"], bins["client"], repository, cases, cache)  # primes it
        runs = {False: [], True: []}
        for round_index in range(args.rounds):
            for cached in ((False, True) if round_index % 2 == 0 else (True, False)):
                runs[cached].append(one_server(args, bins["server"], bins["client"], repository,
                                               cases, cache if cached else None))
                print(f"round {round_index + 1}/{args.rounds} {'with' if cached else 'without'}"
                      f" cache: " + ", ".join(f"{name} {r[1]:.3f} ms ({r[2]})"
                                             for name, r in runs[cached][-1].items()),
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for case in cases:
        for cached in (False, True):
            results = [run[case.name] for run in runs[cached]]
            rows.append([case.name, "with" if cached else "without",
                         spread([r[0] for r in results]), spread([r[1] for r in results]),
                         str(len({r[2] for r in results}))])
    print(f"{engine.cpu_model()}, {os.cpu_count()} CPUs; oneDNN ISA {onednn_isa(args.build_dir)}; "
          f"--threads={args.threads}; "
          f"{args.rounds} fresh servers of each kind, medians (min-max); load average "
          f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print_table(["case", "tuning cache", "first request ms", "compute ms", "plans served"], rows,
                args.markdown)
    print(f"\nrerun: /usr/bin/python3 tests/bench/tuning_cache_bench.py --cases '{args.cases}' "
          f"--threads {args.threads} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
