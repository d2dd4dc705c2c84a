#!/usr/bin/python3
"""System test: scale-out on one machine, real servers on loopback.

Starts real sepconv-server processes on distinct free 127.0.0.1 ports and
drives them with `sepconv-client bench` (16 requests in flight, round_robin)
through one `ipv4:127.0.0.1:A,127.0.0.1:B,...` target. Phases (--phase):

  balance  3 servers: each server's own sepconv_inference_requests_total is
           within 15% of a third of their sum.
  roll     3 servers under that load, restarted one after another as
           Kubernetes does (SIGTERM, wait for exit, start the replacement on
           the same port, wait for SERVING via grpc.health.v1, next): the bench
           reports 0 errors of any code, and every replacement served requests.
  join     3 servers with a 2 s --max_connection_age_secs; the target lists a
           4th port with nothing on it; the 4th server starts while the bench
           runs: within 60 s its share of requests per second reaches at least
           85% of a quarter, and no call fails while connections age. Prints
           how long that took.
           With an ipv4: list the client knows the 4th address from the start
           and reconnects on gRPC's backoff, ageing or not.
  join_dns The same through dns://127.0.0.1:PORT/replicas.test:P (a stub DNS
           server here; replicas on 127.0.0.11-14, one port) whose answer
           gains the 4th address once it is SERVING: only a re-resolution
           finds it, which the servers' 2 s connection age causes (gRPC waits
           at least 30 s between resolutions). --age_secs=0 shows the 4th
           getting nothing in 90 s.
  scaling  (a measurement, asserts nothing but that requests succeed) bench
           throughput with 1, 2 and 3 replicas and each server's CPU share
           (process_cpu_seconds_total over the bench), one table.

Every wait is bounded; every process started is killed at the end.

Usage: scale_test.py --server BIN --client BIN --phase balance|roll|join|join_dns|scaling
                     [--lb_policy round_robin|pick_first] [--age_secs N]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from sepconv_testing import free_port, scrape_sums, wait_for  # noqa: E402

IN_FLIGHT = 16
SHAPE = "1,32,28,28"
# One engine thread per replica: this machine has 2 cores for all of them.
# Shutdown windows of seconds (defaults: 300 and 200 ms): the roll asserts
# that no call fails, which needs every client to see the GOAWAY in time, and
# a loaded or slow test machine must not make that flaky.
SERVER_FLAGS = ["--threads=1", "--instances=1", "--exit_timeout_secs=10",
                "--shutdown_drain_grace_ms=2000", "--shutdown_goaway_settle_ms=2000"]


def log(message):
    print(f"[scale_test {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Replica:
    """One sepconv-server on fixed ports; start() again after stop() reuses them."""

    def __init__(self, args, tmp, name, extra_flags=(), address="127.0.0.1", grpc_port=None):
        self.args, self.tmp, self.name, self.address = args, tmp, name, address
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = free_port()
        self.extra_flags = list(extra_flags)
        self.proc = None
        self.generation = 0

    def start(self):
        self.generation += 1
        log_path = os.path.join(self.tmp, f"{self.name}.{self.generation}.log")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [self.args.server, f"--address={self.address}", f"--grpc_port={self.grpc_port}", "--http_port=0",
             f"--metrics_port={self.metrics_port}", *SERVER_FLAGS, *self.extra_flags],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_serving(self, timeout=60):
        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}")
            run = subprocess.run([self.args.client, "health",
                                  f"--server={self.address}:{self.grpc_port}", "--timeout_ms=1000"],
                                 capture_output=True, timeout=10)
            return run.returncode == 0
        wait_for(f"{self.name} SERVING", serving, timeout)

    def stop(self, timeout=40):
        """SIGTERM, then wait for the exit (as the kubelet does); returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        return rc

    def requests(self):
        return scrape_sums(self.metrics_port, self.address).get("sepconv_inference_requests_total", 0.0)

    def cpu_seconds(self):
        return scrape_sums(self.metrics_port, self.address).get("process_cpu_seconds_total", 0.0)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_all(replicas):
    """Starts every replica, then waits until each is SERVING."""
    for r in replicas:
        r.start()
    for r in replicas:
        r.wait_serving()


def target(replicas, extra_ports=()):
    ports = [r.grpc_port for r in replicas] + list(extra_ports)
    return "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)


def start_bench(args, tgt, seconds, extra=()):
    """Starts one bench step of `seconds` (one window: its p99 and error tally
    cover the whole run) at IN_FLIGHT requests in flight; returns the Popen."""
    return subprocess.Popen(
        [args.client, "bench", f"--server={tgt}", f"--lb_policy={args.lb_policy}",
         f"--concurrency={IN_FLIGHT}", f"--shape={SHAPE}", "--warmup_ms=500",
         f"--window_ms={int(seconds * 1000)}", "--max_windows=1", "--json=-", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_bench(bench, timeout):
    out, err = bench.communicate(timeout=timeout)
    try:  # a bench with failed requests exits 1 but still reports them
        step = json.loads(out)["steps"][0]
    except ValueError:
        raise AssertionError(f"bench failed ({bench.returncode}): {err}")
    step.update({f"{k}_ms": v for k, v in step["latency_ms"].items()})
    if step["errors"]:
        log(f"bench stderr: {err[-3000:]}")
    return step


def phase_balance(args, tmp):
    replicas = [Replica(args, tmp, f"r{i}") for i in range(3)]
    try:
        start_all(replicas)
        bench_secs = 10
        bench = start_bench(args, target(replicas), bench_secs)
        # Counted from when every replica has traffic: connections that come
        # up at different moments (and the warm-up) do not skew the shares.
        wait_for("traffic on every replica", lambda: all(r.requests() > 0 for r in replicas), 30)
        baseline = [r.requests() for r in replicas]
        step = finish_bench(bench, bench_secs + 60)
        counts = [r.requests() - b for r, b in zip(replicas, baseline)]
        total = sum(counts)
        log(f"bench: {step['infer_per_sec']:.1f} infer/s, errors {step['errors']}; "
            f"per server {counts} of {total}")
        assert not step["errors"], step["errors"]
        assert total > 0
        for r, n in zip(replicas, counts):
            share = n / (total / 3)
            log(f"{r.name}: {n:.0f} requests, {share:.3f} of a third")
            assert abs(share - 1) <= 0.15, f"{r.name} has {share:.3f} of a third (limit +-15%)"
    finally:
        for r in replicas:
            r.kill()


def phase_roll(args, tmp):
    replicas = [Replica(args, tmp, f"r{i}") for i in range(3)]
    try:
        start_all(replicas)
        # Long enough for three restarts (each a few seconds) on a slow or
        # loaded machine; the bench's one window covers them all.
        bench_secs = 90
        bench = start_bench(args, target(replicas), bench_secs)
        started = time.monotonic()
        wait_for("traffic on every replica", lambda: all(r.requests() > 0 for r in replicas), 15)
        restarts = []
        for r in replicas:
            t0 = time.monotonic()
            rc = r.stop()
            assert rc == 0, f"{r.name} exited {rc} on SIGTERM"
            t1 = time.monotonic()
            r.start()
            r.wait_serving()
            t2 = time.monotonic()
            restarts.append((r.name, t1 - t0, t2 - t1))
            log(f"{r.name}: exited in {t1 - t0:.2f}s, replacement SERVING after {t2 - t1:.2f}s")
        rolled = time.monotonic() - started
        assert rolled < bench_secs, f"the roll ({rolled:.1f}s) outlasted the bench window"
        wait_for("traffic on every replacement", lambda: all(r.requests() > 0 for r in replicas),
                 15)
        step = finish_bench(bench, bench_secs + 60)
        requests = step.get("requests", 0)
        log(f"ROLL: {len(restarts)} restarts in {rolled:.1f}s; bench {requests} requests, "
            f"{step['infer_per_sec']:.1f} infer/s, p50 {step['p50_ms']:.2f} ms, "
            f"p99 {step['p99_ms']:.2f} ms, max {step['max_ms']:.2f} ms, errors {step['errors']}; "
            f"replacements served {[int(r.requests()) for r in replicas]}")
        assert not step["errors"], f"requests failed during the roll: {step['errors']}"
    finally:
        for r in replicas:
            r.kill()


def phase_join(args, tmp):
    ageing = ["--max_connection_age_secs=2", "--max_connection_age_grace_secs=5"]
    replicas = [Replica(args, tmp, f"r{i}", ageing) for i in range(4)]
    late = replicas[3]
    try:
        start_all(replicas[:3])
        # The 4th replica gets its share within seconds; the window leaves a
        # slow or loaded machine a minute for it.
        bench_secs = 90
        bench = start_bench(args, target(replicas), bench_secs)
        wait_for("traffic", lambda: sum(r.requests() for r in replicas[:3]) > 0, 15)
        time.sleep(5)  # the client has been failing to reach the 4th port meanwhile
        late.start()
        late.wait_serving()
        t0 = time.monotonic()
        last = [r.requests() for r in replicas]
        last_t = t0
        took = None
        while time.monotonic() - t0 < 60:
            time.sleep(0.5)
            now = [r.requests() for r in replicas]
            now_t = time.monotonic()
            delta = [b - a for a, b in zip(last, now)]
            last, last_t = now, now_t
            total = sum(delta)
            share = delta[3] / (total / 4) if total else 0
            log(f"+{now_t - t0:.1f}s: 4th server {share:.2f} of a quarter ({delta})")
            if share >= 0.85:
                took = now_t - t0
                break
        step = finish_bench(bench, bench_secs + 60)
        log(f"JOIN: the 4th replica took a fair share {took if took is None else f'{took:.1f}'}s "
            f"after it was SERVING (connection age 2s); bench errors {step['errors']}")
        assert took is not None, "the 4th replica never reached 85% of a quarter within 60 s"
        # A server closing an aged connection can reset it under an answer in
        # flight, which gRPC cannot retry; the client sends such a call once
        # more (ClientOptions::max_attempts), so none may fail.
        assert not step["errors"], (f"calls failed while connections aged: {step['errors']} "
                                    f"of {step['requests']}; first: {step.get('first_error')}")
    finally:
        for r in replicas:
            r.kill()


def onednn_isa(args, tmp):
    """The ISA line oneDNN prints (ONEDNN_VERBOSE) when the server builds its primitives."""
    port = free_port()
    log_path = os.path.join(tmp, "isa.log")
    with open(log_path, "w") as out:
        proc = subprocess.Popen([args.server, "--address=127.0.0.1", f"--grpc_port={port}", "--http_port=0",
                                 "--metrics_port=0", "--threads=1"], stdout=out,
                                stderr=subprocess.STDOUT, env=dict(os.environ, ONEDNN_VERBOSE="1"))
    try:
        wait_for("isa server", lambda: subprocess.run(
            [args.client, "infer", f"--server=127.0.0.1:{port}", f"--shape={SHAPE}"],
            capture_output=True, timeout=10).returncode == 0, 30)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    with open(log_path, errors="replace") as f:
        return next((line.strip() for line in f if ",isa:" in line), "isa: not reported")


class Dns:
    """A DNS server on 127.0.0.1 (UDP) that answers A queries for `name` with
    the current `addresses` (TTL 0) and every other query with no answer:
    what a Kubernetes headless Service's name does as pods come and go."""

    def __init__(self, name):
        self.name = name.lower().rstrip(".")
        self.addresses = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            self.sock.sendto(self.answer(query), peer)

    def answer(self, query):
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode(errors="replace"))
            i += 1 + query[i]
        qtype = int.from_bytes(query[i + 1:i + 3], "big")
        question = query[12:i + 5]
        ips = list(self.addresses) if (".".join(labels).lower() == self.name and qtype == 1) else []
        header = query[:2] + b"\x85\x80" + (1).to_bytes(2, "big") + len(ips).to_bytes(2, "big") + \
            b"\x00\x00\x00\x00"
        records = b"".join(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04" +
                           socket.inet_aton(ip) for ip in ips)
        return header + question + records

    def stop(self):
        self.stopped = True
        self.thread.join(timeout=5)
        self.sock.close()


def phase_join_dns(args, tmp):
    """Like join, through a DNS name (dns://127.0.0.1:PORT/replicas.test:P)
    whose answer gains the 4th replica's address (distinct loopback
    addresses, one port): only re-resolution finds it, and gRPC re-resolves
    when a connection closes, at most every 30 s. With connection ageing the
    4th gets its share; --age_secs=0 shows it getting nothing."""
    ageing = [f"--max_connection_age_secs={args.age_secs}", "--max_connection_age_grace_secs=5"]
    port = free_port()
    replicas = [Replica(args, tmp, f"r{i}", ageing, f"127.0.0.{11 + i}", port) for i in range(4)]
    late = replicas[3]
    dns = Dns("replicas.test")
    dns.addresses = [r.address for r in replicas[:3]]
    try:
        start_all(replicas[:3])
        bench_secs = 120  # gRPC re-resolves at most every 30 s; a slow machine gets 90
        bench = start_bench(args, f"dns://127.0.0.1:{dns.port}/replicas.test:{port}", bench_secs)
        wait_for("traffic", lambda: all(r.requests() > 0 for r in replicas[:3]), 15)
        late.start()
        late.wait_serving()
        dns.addresses.append(late.address)  # the pod is ready: DNS lists it
        t0 = time.monotonic()
        last = [r.requests() for r in replicas]
        took = None
        while time.monotonic() - t0 < 90:
            time.sleep(1)
            now = [r.requests() for r in replicas]
            delta = [b - a for a, b in zip(last, now)]
            last = now
            total = sum(delta)
            share = delta[3] / (total / 4) if total else 0
            if share >= 0.85:
                took = time.monotonic() - t0
                break
        step = finish_bench(bench, bench_secs + 60)
        log(f"JOIN_DNS: connection age {args.age_secs}s: the 4th replica took a fair share "
            f"{'never (90 s)' if took is None else f'{took:.1f}s'} after DNS listed it; "
            f"bench errors {step['errors']} of {step['requests']}")
        assert not step["errors"], (f"calls failed while connections aged: {step['errors']}; "
                                    f"first: {step.get('first_error')}")
        if args.age_secs > 0:
            assert took is not None, "the 4th replica never reached 85% of a quarter within 90 s"
        else:
            assert took is None, "without ageing the 4th replica got traffic: re-resolved how?"
    finally:
        dns.stop()
        for r in replicas:
            r.kill()


def phase_scaling(args, tmp):
    print(onednn_isa(args, tmp))
    rows = []
    for n in (1, 2, 3):
        replicas = [Replica(args, tmp, f"s{n}_{i}") for i in range(n)]
        try:
            start_all(replicas)
            cpu0 = [r.cpu_seconds() for r in replicas]
            t0 = time.monotonic()
            step = finish_bench(start_bench(args, target(replicas), 8), 60)
            wall = time.monotonic() - t0
            cpu = [(r.cpu_seconds() - c) / wall for r, c in zip(replicas, cpu0)]
            assert not step["errors"], step["errors"]
            rows.append((n, step["infer_per_sec"], step["p50_ms"], step["p99_ms"], cpu))
        finally:
            for r in replicas:
                r.kill()
    base = rows[0][1]
    print(f"\nreplicas  infer/s  vs 1   p50 ms   p99 ms   CPU per replica (cores)")
    for n, tput, p50, p99, cpu in rows:
        print(f"{n:8d}  {tput:7.1f}  {tput / base:4.2f}  {p50:7.2f}  {p99:7.2f}   "
              f"{' '.join(f'{c:.2f}' for c in cpu)} (sum {sum(cpu):.2f})")
    print(f"(--threads=1 per replica, {IN_FLIGHT} in flight, shape {SHAPE}, "
          f"{os.cpu_count()} CPUs shared with other work)")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--client", required=True)
    parser.add_argument("--phase", required=True, choices=["balance", "roll", "join", "join_dns", "scaling"])
    parser.add_argument("--age_secs", type=int, default=2,
                        help="join_dns: the servers' --max_connection_age_secs")
    parser.add_argument("--lb_policy", default="round_robin",
                        help="the client's policy (pick_first shows the balance check fail)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale_test.") as tmp:
        try:
            globals()[f"phase_{args.phase}"](args, tmp)
        except BaseException:
            for name in sorted(os.listdir(tmp)):  # the servers' own words
                with open(os.path.join(tmp, name), errors="replace") as f:
                    tail = f.read()[-2000:]
                print(f"--- {name} ---\n{tail}", file=sys.stderr)
            raise
    log("PASS")


if __name__ == "__main__":
    main()
