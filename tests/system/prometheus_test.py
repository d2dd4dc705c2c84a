#!/usr/bin/python3
"""System test: a real Prometheus scrapes a real sepconv-server.

Starts sepconv-server (default model: 32 -> 64 channels, 3x3) and Debian's
prometheus on free 127.0.0.1 ports, with a generated config (1s scrapes,
deploy/prometheus/rules.yml) and its data in a temp dir; sends a known mix of
requests with sepconv-client; waits for two scrapes after the traffic; then
asks Prometheus' HTTP API:
  1. the request count equals what was sent (by status, and samples);
  2. sum(rate(sepconv_flops_total[1m])) / sum(rate(sepconv_standard_conv_flops_total[1m]))
     equals 1/N + 1/K^2 = 1/64 + 1/9 within 1e-6 (and so does the recording rule);
  3. the p99 latency recording rule is a finite number;
and runs `promtool check metrics` on a live scrape, which must report nothing.
Every wait is bounded; every process is killed at the end.

Usage: prometheus_test.py --server BIN --client BIN --rules FILE
                          [--prometheus BIN] [--promtool BIN]
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import free_port, http_get, wait_for  # noqa: E402

EXPECTED_RATIO = 1 / 64 + 1 / 9
SCRAPE_SECS = 1


def log(message):
    print(f"[prometheus_test {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr):
        """Instant query; returns the list of (labels, float value)."""
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(url))
        if body["status"] != "success":
            raise AssertionError(f"query {expr} failed: {body}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def scalar(self, expr):
        """The single value of `expr`, or None when it has no result."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr}: {len(result)} series, expected one: {result}")
        return result[0][1] if result else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--client", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="sepconv-prometheus-test-")
    procs = []

    def start(name, argv):
        out = open(os.path.join(tmp, f"{name}.log"), "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        procs.append((name, proc))
        return proc

    failed = True
    try:
        # --- sepconv-server, gRPC on a port it picks, metrics on a free one.
        metrics_port = free_port()
        server = start("server", [args.server, "--address=127.0.0.1", "--grpc_port=0", "--http_port=0",
                                  f"--metrics_port={metrics_port}", "--max_queue_delay_us=200"])
        server_log = os.path.join(tmp, "server.log")

        def grpc_port():
            if server.poll() is not None:
                raise SystemExit(f"FAIL: server exited: {open(server_log).read()}")
            m = re.search(r"gRPC port (\d+)", open(server_log).read())
            return int(m.group(1)) if m else None

        port = wait_for("the server to start", grpc_port, 60)
        address = f"127.0.0.1:{port}"
        log(f"server: gRPC {address}, metrics {metrics_port}")

        # --- Prometheus with the deploy rules, scraping every second.
        prom_port = free_port()
        rules = os.path.join(tmp, "rules.yml")
        shutil.copy(args.rules, rules)
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: {SCRAPE_SECS}s
  evaluation_interval: {SCRAPE_SECS}s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: sepconv
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
""")
        start("prometheus", [args.prometheus, f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--web.enable-lifecycle"])
        prom = Prometheus(prom_port)
        wait_for("Prometheus to be ready", lambda: "Ready" in http_get(f"{prom.base}/-/ready"), 60)
        # A baseline scrape of the zero counters, so rate() sees the traffic.
        wait_for("a first scrape", lambda: prom.scalar(
            'sum(sepconv_inference_requests_total{job="sepconv"})') == 0, 30)

        # --- promtool check metrics on a live scrape.
        scrape = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        check = subprocess.run([args.promtool, "check", "metrics"], input=scrape,
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0 or check.stdout.strip() or check.stderr.strip():
            raise AssertionError(f"promtool check metrics: rc={check.returncode} "
                                 f"{check.stdout}{check.stderr}")
        log("promtool check metrics: no problems")

        # --- A known mix of requests.
        def infer(*flags):
            run = subprocess.run([args.client, "infer", f"--server={address}", *flags],
                                 capture_output=True, text=True, timeout=60)
            return run.returncode, run.stderr

        sent = {"ok": 0, "INVALID_ARGUMENT": 0}
        samples = 0
        for i in range(12):
            n = 1 + i % 3  # batches of 1, 2 and 3 samples
            rc, err = infer(f"--shape={n},32,16,16", f"--seed={i + 1}")
            if rc != 0:
                raise AssertionError(f"good request failed: {err}")
            sent["ok"] += 1
            samples += n
        for shape in ["1,3,16,16", "1,32,16", "1,64,8,8"]:  # wrong C, wrong rank, wrong C
            rc, err = infer(f"--shape={shape}")
            if rc == 0 or "INVALID_ARGUMENT" not in err:
                raise AssertionError(f"bad request {shape} was not INVALID_ARGUMENT: {rc} {err}")
            sent["INVALID_ARGUMENT"] += 1
        traffic_end = time.time()
        total = sum(sent.values())
        log(f"sent {sent} ({samples} samples)")

        # --- Two scrapes after the traffic.
        wait_for("two scrapes after the traffic", lambda: (prom.scalar(
            'timestamp(up{job="sepconv"})') or 0) >= traffic_end + 2 * SCRAPE_SECS, 30)

        # 1. Counts.
        got_total = prom.scalar('sum(sepconv_inference_requests_total{job="sepconv"})')
        log(f"(1) Prometheus counts {got_total} requests, sent {total}")
        if got_total != total:
            raise AssertionError(f"request count {got_total} != sent {total}")
        for status, count in sent.items():
            got = prom.scalar(f'sum(sepconv_inference_requests_total{{status="{status}"}})')
            if got != count:
                raise AssertionError(f"status {status}: {got} != {count}")
        got_samples = prom.scalar("sum(sepconv_inference_samples_total)")
        if got_samples != samples:
            raise AssertionError(f"samples {got_samples} != {samples}")

        # 2. The FLOP-savings ratio (README "Watching it"), and its recording rule.
        ratio = prom.scalar("sum(rate(sepconv_flops_total[1m])) / "
                            "sum(rate(sepconv_standard_conv_flops_total[1m]))")
        log(f"(2) FLOP ratio {ratio!r}, expected 1/64 + 1/9 = {EXPECTED_RATIO!r}")
        if ratio is None or abs(ratio - EXPECTED_RATIO) > 1e-6:
            raise AssertionError(f"FLOP ratio {ratio} != {EXPECTED_RATIO}")
        recorded = wait_for("the FLOP-savings recording rule",
                            lambda: prom.scalar("job:sepconv_flops_savings:ratio_rate1m"), 15)
        if abs(recorded - EXPECTED_RATIO) > 1e-6:
            raise AssertionError(f"recorded FLOP ratio {recorded} != {EXPECTED_RATIO}")

        # 3. The p99 recording rule is a finite number.
        p99 = wait_for("the p99 recording rule", lambda: prom.scalar(
            'model_version:sepconv_request_duration_seconds:p99_rate1m{model="sepconv"}'), 15)
        log(f"(3) p99 latency recording rule: {p99} s")
        if not math.isfinite(p99) or p99 <= 0:
            raise AssertionError(f"p99 {p99} is not a finite positive number")

        # No alert fires on this healthy-but-for-3-bad-requests run except the
        # error ratio (3 of 15 failed) which must still be pending (for: 5m).
        firing = [a for a in json.loads(http_get(f"{prom.base}/api/v1/alerts"))["data"]["alerts"]
                  if a["state"] == "firing"]
        if firing:
            raise AssertionError(f"unexpected firing alerts: {firing}")
        failed = False
        log("PASS")
    finally:
        for name, proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for name, proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if failed:
            for name, _ in procs:
                log(f"--- {name}.log (tail)")
                print(open(os.path.join(tmp, f"{name}.log")).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
