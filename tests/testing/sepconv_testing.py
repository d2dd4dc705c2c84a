"""Helpers the Python tests and benches share (the C++ ones are tests/testing/*.h).

One free-port finder, one loopback HTTP GET, one bounded poll, one Prometheus
text parser, one child process that logs to a temp file and one table printer. Import with
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "testing"))
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

_SAMPLE = re.compile(r"^(\w+)(?:\{[^}]*\})?\s+(\S+)$")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """The body of GET `url` as text; raises on a non-2xx answer or a timeout."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(what, check, timeout, interval=0.1):
    """Polls check() until it returns a truthy value, which it returns;
    raises AssertionError naming `what` and the last error after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # not up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def metric_sums(text, names=r"\w+"):
    """{sample name: sum over its label sets} of a Prometheus text exposition,
    for the sample names that match the regex `names` whole."""
    wanted = re.compile(names)
    sums = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and wanted.fullmatch(match.group(1)):
            sums[match.group(1)] = sums.get(match.group(1), 0.0) + float(match.group(2))
    return sums


def scrape_sums(metrics_port, address="127.0.0.1", names=r"\w+", timeout=10):
    """metric_sums() of the server's /metrics."""
    return metric_sums(http_get(f"http://{address}:{metrics_port}/metrics", timeout), names)


class LoggedProcess:
    """A child whose stdout and stderr go to a temp file (removed by stop())."""

    def __init__(self, argv, prefix, env=None):
        self.argv = list(argv)
        self.log = tempfile.NamedTemporaryFile(mode="w+", prefix=prefix, suffix=".log",
                                               delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=self.log, env=full_env)

    def text(self):
        """All it wrote so far."""
        with open(self.log.name) as f:
            return f.read()

    def wait_for_port(self, pattern, timeout=60):
        """The int the regex `pattern`'s group 1 finds in its log (polled up to
        `timeout` s); raises RuntimeError with the log if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.text()}")
            match = re.search(pattern, self.text())
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        raise RuntimeError(f"{self.argv[0]} did not start in {timeout}s: {self.text()}")

    def stop(self, timeout=30):
        """SIGTERM (SIGKILL after `timeout` s); removes the log; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)
        return self.proc.returncode


def print_table(header, rows, markdown=False):
    """Prints rows of strings under `header`: a Markdown table (first column
    left-aligned, the others right-aligned) or aligned plain text."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for k, row in enumerate([header] + rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
