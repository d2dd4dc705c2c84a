#!/usr/bin/python3
"""Unit tests of sepconv_testing.py, the Python tests' shared helpers."""
import contextlib
import http.server
import io
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sepconv_testing  # noqa: E402

EXPOSITION = """# HELP sepconv_inference_requests_total Requests.
# TYPE sepconv_inference_requests_total counter
sepconv_inference_requests_total{model="a",status="ok"} 3
sepconv_inference_requests_total{model="b",status="ok"} 4.5
sepconv_overhead_duration_seconds_sum 0.25
process_open_fds 12
"""


class MetricSumsTest(unittest.TestCase):
    def test_sums_over_label_sets(self):
        sums = sepconv_testing.metric_sums(EXPOSITION)
        self.assertEqual(sums["sepconv_inference_requests_total"], 7.5)
        self.assertEqual(sums["process_open_fds"], 12)
        self.assertNotIn("HELP", sums)

    def test_names_filter_matches_whole_names(self):
        sums = sepconv_testing.metric_sums(EXPOSITION, names=r"sepconv_overhead_\w+")
        self.assertEqual(sums, {"sepconv_overhead_duration_seconds_sum": 0.25})
        self.assertEqual(sepconv_testing.metric_sums(EXPOSITION, names=r"process"), {})


class MetricsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = EXPOSITION.encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackTest(unittest.TestCase):
    def test_free_port_can_be_bound(self):
        port = sepconv_testing.free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_scrape_sums_reads_metrics_over_http(self):
        server = http.server.HTTPServer(("127.0.0.1", 0), MetricsHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            sums = sepconv_testing.scrape_sums(server.server_port)
            self.assertEqual(sums["sepconv_inference_requests_total"], 7.5)
            with self.assertRaises(Exception):
                sepconv_testing.http_get(f"http://127.0.0.1:{server.server_port}/nope")
        finally:
            server.shutdown()
            server.server_close()


class WaitForTest(unittest.TestCase):
    def test_returns_the_first_truthy_value(self):
        calls = []

        def check():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("not yet")
            return "up"

        self.assertEqual(sepconv_testing.wait_for("it", check, 10, interval=0.01), "up")

    def test_times_out_naming_what_and_the_last_error(self):
        def check():
            raise ConnectionError("refused")

        with self.assertRaisesRegex(AssertionError, r"waiting for the thing .*refused"):
            sepconv_testing.wait_for("the thing", check, 0.2, interval=0.05)


class LoggedProcessTest(unittest.TestCase):
    def test_port_from_log_and_sigterm_stop(self):
        p = sepconv_testing.LoggedProcess(
            ["/bin/sh", "-c", "echo 'listening on gRPC port 4321, ready'; exec sleep 60"], "t_")
        self.assertEqual(p.wait_for_port(r"on gRPC port (\d+)", timeout=30), 4321)
        log = p.log.name
        self.assertEqual(p.stop(timeout=30), -15)  # SIGTERM
        self.assertFalse(os.path.exists(log))

    def test_early_exit_raises_with_the_log(self):
        p = sepconv_testing.LoggedProcess(["/bin/sh", "-c", "echo boom >&2; exit 3"], "t_")
        with self.assertRaisesRegex(RuntimeError, "boom"):
            p.wait_for_port(r"port (\d+)", timeout=30)
        self.assertEqual(p.stop(), 3)


class PrintTableTest(unittest.TestCase):
    def printed(self, markdown):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            sepconv_testing.print_table(["case", "ms"], [["a", "1.5"], ["long", "10.25"]], markdown)
        return out.getvalue().splitlines()

    def test_markdown(self):
        self.assertEqual(self.printed(True),
                         ["| case | ms |", "|---|---:|", "| a | 1.5 |", "| long | 10.25 |"])

    def test_plain_aligns_first_left_and_others_right(self):
        self.assertEqual(self.printed(False),
                         ["case     ms", "----  -----", "a       1.5", "long  10.25"])


if __name__ == "__main__":
    unittest.main()
