#!/usr/bin/python3
"""Two sepconv-server builds side by side, through the server, in one run.

  /usr/bin/python3 tests/bench/server_ab_bench.py --baseline OTHER_BUILD_DIR
      [--build_dir build] [--cases REGEX] [--threads 2] [--rounds 3] [--markdown]

For a change that touches the transport, the core or the engine: the same
cases as server_engine_bench.py (one request at a time, batching off, NCHW
in and out, the tensors in the gRPC messages), each round starting a fresh
server of each build in turn (the order alternating between rounds, so a
burst of load from other tenants hits both alike). It prints, per case, the
server's own compute time (sepconv_compute_duration_seconds, median of
window means) and the client's end-to-end p50, median over rounds, for the
baseline and for this build, and this build's time over the baseline's
(< 1: faster). Both servers get requests from this build's sepconv-client.
Speed is reported, never asserted; the machine's load and oneDNN's ISA are
printed. To measure a commit against its parent:

  git worktree add /tmp/base HEAD~1 && cmake -S /tmp/base -B /tmp/base/build -G Ninja \\
      -DCMAKE_BUILD_TYPE=Release && ninja -C /tmp/base/build sepconv-server
"""
import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "testing"))
import server_engine_bench as engine  # noqa: E402
from sepconv_testing import print_table  # noqa: E402


def onednn_isa(build_dir):
    """The ISA oneDNN dispatches here (engine_bench's report of one short run)."""
    binary = os.path.join(build_dir, "tests", "bench", "engine_bench")
    if not os.access(binary, os.X_OK):
        return "? (no engine_bench)"
    return engine.run_engine(binary, "^sepconv/1x32-64x112/auto/real_time$", 1, 0.01)["_isa"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the other build dir (its server)")
    parser.add_argument("--build_dir", default=os.path.join(ROOT, "build"))
    engine.add_serving_args(parser, window_ms=400, windows=5, warmup_ms=300)
    parser.set_defaults(cases="sepconv/1x")
    parser.add_argument("--threads", type=int, default=2, help="--threads of both servers")
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers per build")
    args = parser.parse_args()

    cases = engine.cases_matching(parser, args.cases)
    servers = {"baseline": os.path.join(args.baseline, "server", "sepconv-server"),
               "this build": os.path.join(args.build_dir, "server", "sepconv-server")}
    for path in servers.values():
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} missing: build its sepconv-server first")
    client = os.path.join(args.build_dir, "client", "sepconv-client")
    models = sorted({c.model for c in cases})
    load = os.getloadavg()[0]
    results = {}  # (case, build) -> [(compute ms, e2e p50 ms)]
    with tempfile.TemporaryDirectory(prefix="server_ab_bench_") as repository:
        engine.export_repository(repository, models)
        for round_ in range(args.rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for build in order:
                print(f"round {round_ + 1}/{args.rounds}: {build} ...", file=sys.stderr)
                server = engine.Server(servers[build], repository, args.threads, models)
                try:
                    for case in cases:
                        r = engine.serve_case(args, client, server, case)
                        print(f"  {case.name}: compute {r['server_compute_ms']:.3f} ms; plan "
                              f"{engine.served_plan(server, case)}", file=sys.stderr)
                        results.setdefault((case.name, build), []).append(
                            (r["server_compute_ms"], r["e2e_p50_ms"]))
                finally:
                    server.stop()

    rows = []
    for case in cases:
        base = [statistics.median(x) for x in zip(*results[(case.name, "baseline")])]
        this = [statistics.median(x) for x in zip(*results[(case.name, "this build")])]
        rows.append([case.name, f"{base[0]:.3f}", f"{this[0]:.3f}", f"{this[0] / base[0]:.2f}x",
                     f"{base[1]:.3f}", f"{this[1]:.3f}", f"{this[1] / base[1]:.2f}x"])
    print(f"{engine.cpu_model()}, {os.cpu_count()} CPUs; oneDNN ISA {onednn_isa(args.build_dir)}; "
          f"--threads={args.threads}; medians of {args.rounds} rounds; load average "
          f"{load:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print_table(["case", "baseline compute ms", "this compute ms", "this/baseline",
                 "baseline e2e p50 ms", "this e2e p50 ms", "this/baseline e2e"], rows,
                args.markdown)
    print(f"\nrerun: /usr/bin/python3 tests/bench/server_ab_bench.py --baseline {args.baseline} "
          f"--cases '{args.cases}' --threads {args.threads} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
