#!/usr/bin/python3
"""How idle OpenMP threads should wait in sepconv-server, measured through
the server: the evidence for the shipped default (docs/performance.md
"OpenMP wait policy").

  /usr/bin/python3 tests/bench/wait_policy_bench.py [--build_dir build]
      [--policies spin,passive] [--cases REGEX] [--rounds 3] [--markdown]

libgomp reads OMP_WAIT_POLICY (and GOMP_SPINCOUNT) when it loads, so the
policy cannot be chosen from main(): it is the environment of the process.
"spin" is libgomp's default (idle threads spin a while, then sleep; the
variables are removed from the environment), "passive" and "active" set
OMP_WAIT_POLICY, "spin10k", "spin30k" and "spin100k" set GOMP_SPINCOUNT
(shorter spins than the default 300000). Only plans that run oneDNN's
primitives use OpenMP; the fused kernels have their own pool
(engine/internal/tile_pool.h), so the policy shows where oneDNN serves.

Each round starts, per case and per policy (the order alternating between
rounds), a fresh `sepconv-server` with default threads and batching off on
127.0.0.1, and measures as server_engine_bench.py does: the server's compute
per request (/metrics) and the client's e2e p50 and p99, one request at a
time, median of --windows windows; then the throughput (infer/s) and p99 of
one window of 4 concurrent clients, the CPUs shared with gRPC's threads.
Every fresh server tunes the shape again, and the tuner may choose another
plan (its candidates can time within noise of each other): the plan it
logged is printed with each run, and the summary compares the policies over
the runs that served the case's most frequent plan ("same plan"), so that a
policy is not credited with a plan's difference.
"""

import argparse
import collections
import os
import re
import shlex
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_engine_bench as seb  # noqa: E402
from sepconv_testing import print_table  # noqa: E402

POLICIES = {"spin": {}, "passive": {"OMP_WAIT_POLICY": "passive"},
            "active": {"OMP_WAIT_POLICY": "active"}, "spin10k": {"GOMP_SPINCOUNT": "10000"},
            "spin30k": {"GOMP_SPINCOUNT": "30000"}, "spin100k": {"GOMP_SPINCOUNT": "100000"}}
DEFAULT_CASES = r"^(sepconv/1x|mobilenet_body/1x)"


def measure_run(args, bins, repository, case, policy):
    """One fresh server under `policy`: (plan, compute ms, e2e p50 ms, e2e p99
    ms, infer/s at 4 clients, p99 ms at 4 clients)."""
    server = seb.Server(bins["server"], repository, 0, [case.model], POLICIES[policy])
    try:
        served = seb.serve_case(args, bins["client"], server, case)
        seb.client_bench(bins["client"], server, case, args.window_ms, concurrency=4)
        loaded = seb.client_bench(bins["client"], server, case, args.window_ms, concurrency=4)
        plan = seb.served_plan(server, case)
    finally:
        server.stop()
    return (plan, served["server_compute_ms"], served["e2e_p50_ms"], served["e2e_p99_ms"],
            loaded["infer_per_sec"], loaded["latency_ms"]["p99"])


def short(plan):
    """A plan's kernels, run-length encoded: 'jit_dw:avx2, jit_1x1:avx2' x13."""
    kernels = plan.split(", ")
    if len(kernels) > 4 and len(set(kernels[1:-1])) <= 2:
        pairs = (len(kernels) - 2) // 2
        return f"{kernels[0]}, ({kernels[1]}, {kernels[2]}) x{pairs}, {kernels[-1]}"
    return plan


def summary_rows(cases, policies, runs):
    rows = []
    for case in cases:
        plans = collections.Counter(plan for (c, _), rs in runs.items() if c == case.name
                                    for plan, *_ in rs)
        common = plans.most_common(1)[0][0]
        base = None
        for i, policy in enumerate(policies):
            same = [r for r in runs[(case.name, policy)] if r[0] == common]
            if not same:
                rows.append([case.name, policy, "0", "-", "-", "-", "-", "-", "-"])
                continue
            compute = statistics.median(r[1] for r in same)
            if i == 0:
                base = compute
            rows.append([case.name, policy, str(len(same)), f"{compute:.3f}",
                         f"{compute / base:.2f}" if base else "-",
                         f"{statistics.median(r[2] for r in same):.3f}",
                         f"{statistics.median(r[3] for r in same):.3f}",
                         f"{statistics.median(r[4] for r in same):.1f}",
                         f"{statistics.median(r[5] for r in same):.3f}"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build_dir", default="build")
    parser.add_argument("--policies", default="spin,passive",
                        help=f"comma-separated, of {sorted(POLICIES)}; the first is the base")
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help="regex over server_engine_bench.py's case names")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window_ms", type=float, default=2000)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--warmup_ms", type=float, default=1000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    policies = args.policies.split(",")
    if set(policies) - set(POLICIES):
        parser.error(f"--policies: {sorted(set(policies) - set(POLICIES))} unknown")
    cases = [c for c in seb.CASES if re.search(args.cases, c.name)]
    if not cases:
        parser.error(f"--cases {args.cases!r} matches none of {[c.name for c in seb.CASES]}")
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        os.environ.pop(name, None)

    runs = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="wait_policy_bench_") as tmp:
        bins, built = seb.snapshot(args.build_dir, tmp)
        repository = os.path.join(tmp, "repository")
        seb.export_repository(repository, sorted({c.model for c in cases}))
        for round_ in range(args.rounds):
            for case in cases:
                for policy in policies if round_ % 2 == 0 else policies[::-1]:
                    run = measure_run(args, bins, repository, case, policy)
                    runs[(case.name, policy)].append(run)
                    print(f"round {round_ + 1} {case.name} {policy}: compute {run[1]:.3f} ms, "
                          f"e2e p50 {run[2]:.3f} ms, p99 {run[3]:.3f} ms; at 4 clients "
                          f"{run[4]:.1f} infer/s, p99 {run[5]:.3f} ms; plan {short(run[0])}",
                          flush=True)

    isas = sorted({isa for rs in runs.values() for r in rs
                   for isa in re.findall(r":((?:avx|sse|amx)\w*)", r[0])})
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"\n{seb.cpu_model()}, {os.cpu_count()} CPUs; kernels' ISA {', '.join(isas)}"
          + (f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else "") + f"; server built "
          f"{built['server']} UTC; default --threads, --max_batch_size=0; medians over the "
          "rounds that served the case's most frequent plan ('runs'); compute is the server's "
          "mean per request (1 client), p50 and p99 the client's (1 client), then infer/s and "
          "p99 at 4 clients")
    print_table(["case", "policy", "runs", "compute ms", f"vs {policies[0]}", "e2e p50 ms",
                 "e2e p99 ms", "infer/s (4 clients)", "p99 ms (4 clients)"],
                summary_rows(cases, policies, runs), args.markdown)
    print(f"\nrerun: /usr/bin/python3 {shlex.join(sys.argv)}")


if __name__ == "__main__":
    main()
