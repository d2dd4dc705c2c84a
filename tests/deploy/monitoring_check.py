#!/usr/bin/python3
"""Checks the Grafana dashboard and the Prometheus rules against the code.

- deploy/grafana/dashboards/*.json parse; every PromQL query in them (panel
  targets and template variables) names only metrics the server exports
  (read from server/metrics/metrics.cc and process_metrics.cc), recording
  rules defined in deploy/prometheus/rules.yml, or `up`;
- every expression in rules.yml names only such metrics too;
- every dashboard query is valid PromQL (promtool check rules on a generated
  rule file);
- the dashboard shows latency percentiles, throughput, GFLOP/s and the FLOP
  savings ratio.
Before checking the real files it proves it can fail: an unknown metric and a
syntax error must both be caught.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

PROMQL_WORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring",
                "group_left", "group_right", "offset", "inf", "nan", "Inf", "NaN"}
# Grafana's variables, replaced by something PromQL accepts.
GRAFANA_VARS = [(r"\$__all", ".*"), (r"\$__rate_interval", "1m"), (r"\$__interval", "1m"),
                (r"\$__range", "1h"), (r"\$\{?[A-Za-z_]+\}?", ".*")]


def exported_metrics(root):
    """Sample names the server exports: family names plus histogram suffixes."""
    names = set()
    with open(os.path.join(root, "server/metrics/metrics.cc")) as f:
        code = f.read()
    for kind, name in re.findall(r'Build(Counter|Gauge|Histogram)\(\)\s*\.Name\("([^"]+)"\)', code):
        names.add(name)
        if kind == "Histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    with open(os.path.join(root, "server/metrics/process_metrics.cc")) as f:
        names.update(re.findall(r'Family\(\s*"(process_[a-z_]+)"', f.read()))
    return names


def rules(root):
    with open(os.path.join(root, "deploy/prometheus/rules.yml")) as f:
        doc = yaml.safe_load(f)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def expand_grafana_vars(expr):
    for pattern, value in GRAFANA_VARS:
        expr = re.sub(pattern, value, expr)
    return expr


def metric_names(expr):
    """Metric (or recording rule) names a PromQL expression selects."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+\w+", " ", e)
    e = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group(0) not in PROMQL_WORDS:
            names.add(m.group(0))
    return names


def dashboard_queries(dashboard):
    """(where, PromQL) for every target and query variable of a dashboard."""
    queries = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append((f"panel '{panel.get('title')}'", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        # label_values(selector, label) is Grafana's, not PromQL: check the selector.
        m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_]+\)\s*", query)
        queries.append((f"variable '{var['name']}'", m.group(1) if m else query))
    return queries


def promtool_syntax_errors(promtool, exprs):
    """promtool's complaints about any expression in `exprs`, or ""."""
    doc = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expand_grafana_vars(e)}
        for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(doc, f)
    try:
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True,
                             text=True, timeout=30)
        return "" if run.returncode == 0 else run.stdout + run.stderr
    finally:
        os.unlink(f.name)


def problems(dashboards, rule_list, known, promtool):
    found = []
    recorded = {r["record"] for r in rule_list if "record" in r}
    allowed = known | recorded | {"up"}
    for rule in rule_list:
        for name in sorted(metric_names(rule["expr"]) - allowed):
            found.append(f"rules.yml {rule.get('record') or rule.get('alert')}: unknown {name}")
    exprs = []
    for path, dashboard in dashboards:
        for where, expr in dashboard_queries(dashboard):
            exprs.append(expr)
            for name in sorted(metric_names(expand_grafana_vars(expr)) - allowed):
                found.append(f"{path} {where}: unknown metric or rule {name}")
    if not exprs:
        found.append("no dashboard queries found")
    errors = promtool_syntax_errors(promtool, exprs) if exprs else ""
    if errors:
        found.append("dashboard PromQL does not parse:\n" + errors)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()

    known = exported_metrics(args.root)
    for name in ["sepconv_inference_requests_total", "sepconv_request_duration_seconds_bucket",
                 "sepconv_flops_total", "sepconv_standard_conv_flops_total",
                 "sepconv_model_info", "process_cpu_seconds_total", "process_open_fds"]:
        if name not in known:
            sys.exit(f"FAIL: could not read metric {name} from server/metrics/*.cc")
    rule_list = rules(args.root)

    # The checker must be able to fail.
    bad = {"panels": [{"title": "bad", "targets": [
        {"expr": 'rate(sepconv_no_such_metric_total{model=~"$model"}[1m])'},
        {"expr": "sum(rate(sepconv_flops_total[1m]) / "}]}]}
    caught = problems([("self-test", bad)], rule_list, known, args.promtool)
    if not (any("sepconv_no_such_metric_total" in p for p in caught) and
            any("does not parse" in p for p in caught)):
        sys.exit(f"FAIL: the checker misses planted errors: {caught}")

    paths = sorted(glob.glob(os.path.join(args.root, "deploy/grafana/dashboards/*.json")))
    if not paths:
        sys.exit("FAIL: no dashboards")
    dashboards = []
    for path in paths:
        with open(path) as f:
            dashboards.append((os.path.relpath(path, args.root), json.load(f)))
    found = problems(dashboards, rule_list, known, args.promtool)

    all_exprs = " ".join(e for _, d in dashboards for _, e in dashboard_queries(d))
    for wanted in ["p50_rate1m", "p90_rate1m", "p99_rate1m", "sepconv_inference_requests:rate1m",
                   "sepconv_inference_samples:rate1m", "gflops_per_second",
                   "sepconv_standard_conv_flops_total"]:
        if wanted not in all_exprs:
            found.append(f"dashboard shows nothing with {wanted}")
    for _, d in dashboards:
        ids = [p["id"] for p in d["panels"]]
        if len(ids) != len(set(ids)):
            found.append(f"dashboard {d.get('title')}: duplicate panel ids")
    if found:
        sys.exit("FAIL:\n" + "\n".join(found))
    n = len(all_exprs.split("sepconv")) - 1
    print(f"OK: {len(paths)} dashboard(s), {len(rule_list)} rules, {n} metric references checked")


if __name__ == "__main__":
    main()
