#!/usr/bin/python3
"""Checks that the deployment files agree with the server they deploy.

deploy/docker-compose.yml, every manifest in deploy/k8s/ and the Dockerfile
must parse, and their ports, probe ports, flags, paths and names must agree
with sepconv-server's flag defaults (read from server/main.cc's ABSL_FLAGs,
and from `sepconv-server --helpfull` when --server is given), with each other
and with deploy/prometheus and deploy/grafana.

Usage: deploy_config_test.py --source REPO_DIR [--server SEPCONV_SERVER]
"""

import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import unittest

import yaml

ARGS = None
METRICS_PATH = None  # what server/metrics/metrics.cc registers with the exposer


def read(*parts):
    with open(os.path.join(ARGS.source, *parts), encoding="utf-8") as f:
        return f.read()


def server_flags_from_source():
    """{flag name: default as written} from server/main.cc's ABSL_FLAGs."""
    text = read("server", "main.cc")
    flags = {}
    for m in re.finditer(r"ABSL_FLAG\(\s*([^,]+?)\s*,\s*(\w+)\s*,\s*(.+?)\s*,\s*\"", text, re.S):
        flags[m.group(2)] = m.group(3).strip().strip('"')
    return flags


def server_flags_from_binary(binary):
    """{flag name: default} from `sepconv-server --helpfull` (all linked flags)."""
    out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    return {m.group(1): m.group(2).strip('"')
            for m in re.finditer(r"--(\w+) \(.*?\);\s+default: (.*?);", text, re.S)}


def flag_args(args):
    """{name: value} from ["--name=value", ...] (flags only, '--x' alone is 'true')."""
    flags = {}
    for arg in args:
        if not arg.startswith("--"):
            raise AssertionError(f"not a flag: {arg!r}")
        name, _, value = arg[2:].partition("=")
        flags[name] = value if _ else "true"
    return flags


def dockerfile_instructions():
    """[(INSTRUCTION, argument text)] of the Dockerfile, continuations joined."""
    lines, current = [], ""
    for raw in read("Dockerfile").splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        current = ""
    return lines


def final_stage(instructions):
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(text):
    """The JSON-array (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD as a list."""
    return yaml.safe_load(text)  # a JSON array is valid YAML


def port_of(address):
    return int(address.rsplit(":", 1)[1])


class Defaults:
    """The server's flag defaults that deployments depend on."""

    def __init__(self):
        self.flags = server_flags_from_source()
        self.grpc_port = int(self.flags["grpc_port"])
        self.http_port = int(self.flags["http_port"])
        self.metrics_port = int(self.flags["metrics_port"])
        self.exit_timeout_secs = int(self.flags["exit_timeout_secs"])


def load_k8s():
    """{kind: [documents]} of every manifest in deploy/k8s/."""
    docs = {}
    for path in sorted(glob.glob(os.path.join(ARGS.source, "deploy", "k8s", "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.setdefault(doc["kind"], []).append(doc)
    return docs


class ServerFlagsTest(unittest.TestCase):
    def test_source_defaults_are_the_documented_ones(self):
        d = Defaults()
        self.assertEqual(d.http_port, 8000)  # like Triton (docs/architecture.md)
        self.assertEqual(d.grpc_port, 8001)
        self.assertEqual(d.metrics_port, 8002)
        self.assertGreater(d.exit_timeout_secs, 0)

    def test_binary_agrees_with_source(self):
        source = server_flags_from_source()
        binary = server_flags_from_binary(ARGS.server)
        for name in ("grpc_port", "metrics_port", "exit_timeout_secs", "address", "threads",
                     "model_repository", "max_connection_age_secs",
                     "max_connection_age_grace_secs"):
            self.assertIn(name, binary, f"sepconv-server --helpfull lacks --{name}")
            self.assertEqual(binary[name], source[name], f"--{name} default")


    def test_help_names_flag_files_without_the_build_path(self):
        # Abseil's --help heads each flag's group with the file that defines
        # it: the repository path, never the machine's source folder.
        source = os.path.realpath(ARGS.source)
        for binary, args, defined_in in ((ARGS.server, ["--help"], "server/main.cc"),
                                         (ARGS.server, ["--helpfull"], "server/main.cc"),
                                         (ARGS.client, ["--helpfull"], "client/main.cc")):
            out = subprocess.run([binary] + args, capture_output=True, text=True, timeout=30)
            text = out.stdout + out.stderr
            self.assertIn(f"Flags from {defined_in}:", text, f"{binary} {args[0]}")
            self.assertNotIn(source, text, f"{binary} {args[0]} prints the source path")


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.defaults = Defaults()
        self.stage = final_stage(dockerfile_instructions())
        self.by_word = {}
        for word, arg in self.stage:
            self.by_word.setdefault(word, []).append(arg)

    def test_base_images_are_bookworm_slim(self):
        froms = [arg for word, arg in dockerfile_instructions() if word == "FROM"]
        self.assertGreaterEqual(len(froms), 2, "multi-stage build expected")
        for arg in froms:
            self.assertTrue(arg.startswith("debian:bookworm-slim"), arg)

    def test_exposes_the_default_ports(self):
        exposed = {int(p.split("/")[0]) for arg in self.by_word["EXPOSE"] for p in arg.split()}
        self.assertEqual(exposed, {self.defaults.http_port, self.defaults.grpc_port,
                                   self.defaults.metrics_port})

    def test_runs_as_fixed_non_root_uid(self):
        user = self.by_word["USER"][-1]
        uid = user.split(":")[0]
        self.assertTrue(uid.isdigit(), f"USER {user}: numeric, so runAsNonRoot can verify it")
        self.assertNotEqual(int(uid), 0)

    def test_entrypoint_healthcheck_stopsignal(self):
        self.assertEqual(exec_form(self.by_word["ENTRYPOINT"][-1]), ["sepconv-server"])
        self.assertEqual(self.by_word["STOPSIGNAL"][-1], "SIGTERM")
        cmd = exec_form(self.by_word["CMD"][-1])
        self.assertIsInstance(cmd, list)
        flag_args(cmd)  # only flags
        health = self.by_word["HEALTHCHECK"][-1]
        test = exec_form(health[health.index("CMD") + 3:].strip())
        self.assertEqual(test[:2], ["sepconv-client", "health"])
        self.assertEqual(port_of(flag_args(test[2:])["server"]), self.defaults.grpc_port)

    def test_release_build_without_tests(self):
        text = read("Dockerfile")
        self.assertIn("-DSEPCONV_BUILD_TESTS=OFF", text)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", text)
        self.assertIn("install-deps.sh runtime", text)
        self.assertIn("install-deps.sh build", text)


class ComposeTest(unittest.TestCase):
    def setUp(self):
        self.defaults = Defaults()
        with open(os.path.join(ARGS.source, "deploy", "docker-compose.yml"), encoding="utf-8") as f:
            self.compose = yaml.safe_load(f)
        self.services = self.compose["services"]
        self.server = self.services["sepconv"]
        self.flags = flag_args(self.server.get("command", []))

    def host_path(self, volume):
        return os.path.normpath(os.path.join(ARGS.source, "deploy", volume.split(":")[0]))

    def mount(self, service, target):
        for volume in self.services[service].get("volumes", []):
            parts = volume.split(":")
            if parts[1] == target:
                return parts[0]
        self.fail(f"{service} mounts nothing at {target}")

    def test_server_flags_exist(self):
        known = self.defaults.flags
        for name in self.flags:
            self.assertIn(name, known, f"compose passes unknown flag --{name}")

    def test_ports_are_the_server_ports(self):
        grpc = self.defaults.grpc_port
        metrics = int(self.flags.get("metrics_port", self.defaults.metrics_port))
        grpc = int(self.flags.get("grpc_port", grpc))
        http = int(self.flags.get("http_port", self.defaults.http_port))
        container_ports = {int(p.split(":")[-1]) for p in self.server["ports"]}
        self.assertEqual(container_ports, {http, grpc, metrics})

    def test_healthcheck_uses_the_client_on_the_grpc_port(self):
        test = self.server["healthcheck"]["test"]
        self.assertEqual(test[:3], ["CMD", "sepconv-client", "health"])
        self.assertEqual(port_of(flag_args(test[3:])["server"]),
                         int(self.flags.get("grpc_port", self.defaults.grpc_port)))

    def test_hardening_and_restart(self):
        self.assertTrue(self.server["read_only"])
        self.assertEqual(self.server["cap_drop"], ["ALL"])
        for name, service in self.services.items():
            self.assertIn(service.get("restart"), ("always", "unless-stopped", "on-failure"), name)
            self.assertIn("healthcheck", service, name)

    def test_connection_age_flags_are_valid(self):
        for name in ("max_connection_age_secs", "max_connection_age_grace_secs"):
            self.assertGreaterEqual(int(self.flags.get(name, self.defaults.flags[name])), 0)

    def test_stop_grace_exceeds_exit_timeout(self):
        grace = int(self.server["stop_grace_period"].rstrip("s"))
        exit_timeout = int(self.flags.get("exit_timeout_secs", self.defaults.exit_timeout_secs))
        self.assertGreater(grace, exit_timeout)
        self.assertEqual(self.server.get("stop_signal", "SIGTERM"), "SIGTERM")

    def test_model_repository_volume(self):
        repo = self.flags["model_repository"]
        host = self.host_path(self.mount("sepconv", repo))
        configs = glob.glob(os.path.join(host, "*", "config.pbtxt"))
        self.assertTrue(configs, f"no <model>/config.pbtxt under {host}")

    def test_every_bind_mount_exists(self):
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith((".", "/")):
                    self.assertTrue(os.path.exists(self.host_path(volume)), f"{name}: {volume}")
                else:
                    self.assertIn(source, self.compose.get("volumes", {}), f"{name}: {volume}")

    def test_prometheus_scrapes_the_server(self):
        config_dir = self.host_path(self.mount("prometheus", "/etc/prometheus"))
        with open(os.path.join(config_dir, "prometheus.yml"), encoding="utf-8") as f:
            prom = yaml.safe_load(f)
        job = next(j for j in prom["scrape_configs"]
                   if any(t.split(":")[0] == "sepconv"
                          for sc in j.get("static_configs", []) for t in sc["targets"]))
        self.assertEqual(job.get("metrics_path", "/metrics"), METRICS_PATH)
        target = job["static_configs"][0]["targets"][0]
        self.assertIn(target.split(":")[0], self.services)
        self.assertEqual(port_of(target),
                         int(self.flags.get("metrics_port", self.defaults.metrics_port)))
        self.assertIn("--config.file=/etc/prometheus/prometheus.yml",
                      self.services["prometheus"]["command"])
        for rule_file in prom.get("rule_files", []):
            self.assertTrue(os.path.exists(os.path.join(config_dir, rule_file)), rule_file)

    def test_grafana_is_provisioned(self):
        provisioning = self.host_path(self.mount("grafana", "/etc/grafana/provisioning"))
        datasources = glob.glob(os.path.join(provisioning, "datasources", "*.yml"))
        self.assertTrue(datasources)
        with open(datasources[0], encoding="utf-8") as f:
            url = yaml.safe_load(f)["datasources"][0]["url"]
        host, port = re.match(r"https?://([^:/]+):(\d+)", url).groups()
        self.assertIn(host, self.services)
        self.assertIn(f"{port}:{port}", self.services[host]["ports"])
        providers = glob.glob(os.path.join(provisioning, "dashboards", "*.yml"))
        self.assertTrue(providers)
        with open(providers[0], encoding="utf-8") as f:
            path = yaml.safe_load(f)["providers"][0]["options"]["path"]
        dashboards = self.host_path(self.mount("grafana", path))
        self.assertTrue(glob.glob(os.path.join(dashboards, "*.json")))


class KubernetesTest(unittest.TestCase):
    def setUp(self):
        self.defaults = Defaults()
        self.docs = load_k8s()
        self.deployment = self.docs["Deployment"][0]
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.pod_labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        self.container = self.pod["containers"][0]
        self.flags = flag_args(self.container["args"])
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}

    def assertSelects(self, selector, what):
        for key, value in selector["matchLabels"].items():
            self.assertEqual(self.pod_labels.get(key), value, f"{what} selects {key}={value}")

    def test_every_manifest_parses_and_has_kind(self):
        files = glob.glob(os.path.join(ARGS.source, "deploy", "k8s", "*.yaml"))
        self.assertGreaterEqual(len(files), 6)
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "ConfigMap"):
            self.assertIn(kind, self.docs)
        self.assertTrue({"PodMonitor", "ServiceMonitor"} & set(self.docs))

    def test_kustomization_lists_every_manifest(self):
        kustomization = yaml.safe_load(read("deploy", "k8s", "kustomization.yaml"))
        files = {os.path.basename(p)
                 for p in glob.glob(os.path.join(ARGS.source, "deploy", "k8s", "*.yaml"))}
        self.assertEqual(set(kustomization["resources"]), files - {"kustomization.yaml"})

    def test_flags_exist_and_ports_are_the_defaults(self):
        for name in self.flags:
            self.assertIn(name, self.defaults.flags, f"unknown flag --{name}")
        self.assertNotIn("grpc_port", self.flags)
        self.assertNotIn("metrics_port", self.flags)
        self.assertNotIn("http_port", self.flags)
        self.assertEqual(self.ports, {"http": self.defaults.http_port,
                                      "grpc": self.defaults.grpc_port,
                                      "metrics": self.defaults.metrics_port})

    def test_probes_are_native_grpc_on_the_grpc_port(self):
        models = self.served_models()
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = self.container[probe]["grpc"]
            self.assertEqual(grpc["port"], self.defaults.grpc_port, probe)
            service = grpc.get("service", "")
            self.assertTrue(service == "" or service in models, f"{probe} service {service!r}")

    def test_security_context(self):
        pod_sc, sc = self.pod["securityContext"], self.container["securityContext"]
        self.assertTrue(pod_sc["runAsNonRoot"])
        uid = read("Dockerfile").split("\nUSER ")[1].split(":")[0].split()[0]
        self.assertEqual(str(pod_sc["runAsUser"]), uid)
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        mounts = {m["mountPath"] for m in self.container["volumeMounts"]}
        self.assertIn("/tmp", mounts)

    def test_grace_period_exceeds_exit_timeout_and_prestop(self):
        exit_timeout = int(self.flags.get("exit_timeout_secs", self.defaults.exit_timeout_secs))
        pre_stop = 0
        command = self.container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        if command:
            self.assertEqual(command["command"][0], "sleep")
            pre_stop = int(command["command"][1])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], exit_timeout + pre_stop)

    def test_connection_ageing_suits_the_hpa(self):
        # Without ageing, long-lived clients never reach the pods the HPA adds.
        age = int(self.flags.get("max_connection_age_secs",
                                 self.defaults.flags["max_connection_age_secs"]))
        grace = int(self.flags.get("max_connection_age_grace_secs",
                                   self.defaults.flags["max_connection_age_grace_secs"]))
        self.assertGreater(age, 0, "--max_connection_age_secs=0: new pods get no traffic")
        hpa = self.docs["HorizontalPodAutoscaler"][0]["spec"]
        scale_down = hpa.get("behavior", {}).get("scaleDown", {}).get(
            "stabilizationWindowSeconds", 300)
        self.assertLessEqual(age, scale_down,
                             "clients must reach a new pod before the HPA may remove it again")
        self.assertGreater(grace, 0, "calls in flight on an aged connection need time")
        self.assertLessEqual(grace, self.pod["terminationGracePeriodSeconds"])

    def test_threads_follow_the_cpu_limit(self):
        limits = self.container["resources"]["limits"]
        self.assertIn("cpu", limits)
        self.assertIn("memory", limits)
        self.assertIn("cpu", self.container["resources"]["requests"])
        # The server's own budget (the cgroup quota, each shape's plan timed
        # on one thread and on all of them) is the measured best; a fixed
        # --threads would not follow a changed limit.
        self.assertNotIn("threads", self.flags)

    def test_tuning_cache_is_on_a_writable_pod_volume(self):
        path = self.flags.get("tuning_cache")
        self.assertTrue(path, "restarts would time every shape again")
        mounts = [m for m in self.container["volumeMounts"]
                  if path.startswith(m["mountPath"].rstrip("/") + "/")]
        self.assertEqual(len(mounts), 1, f"--tuning_cache={path} is on no mounted volume")
        self.assertFalse(mounts[0].get("readOnly", False))
        volume = next(v for v in self.pod["volumes"] if v["name"] == mounts[0]["name"])
        self.assertIn("emptyDir", volume, "a pod volume, kept across container restarts")

    def served_models(self):
        """Model names the ConfigMap volume places under --model_repository."""
        repo = self.flags["model_repository"]
        mount = next(m for m in self.container["volumeMounts"] if m["mountPath"] == repo)
        volume = next(v for v in self.pod["volumes"] if v["name"] == mount["name"])
        configmap = next(c for c in self.docs["ConfigMap"]
                         if c["metadata"]["name"] == volume["configMap"]["name"])
        models = set()
        for item in volume["configMap"]["items"]:
            self.assertIn(item["key"], configmap["data"])
            model, file = item["path"].split("/")
            self.assertEqual(file, "config.pbtxt")
            models.add(model)
            # The same model as the compose stack's repository, byte for byte.
            self.assertEqual(configmap["data"][item["key"]],
                             read("deploy", "models", model, "config.pbtxt"), model)
        return models

    def test_model_repository_configmap(self):
        self.assertTrue(self.served_models())

    def test_services_select_the_pods_and_name_its_ports(self):
        services = self.docs["Service"]
        self.assertTrue(any(s["spec"].get("clusterIP") == "None" for s in services),
                        "a headless Service for client-side load balancing")
        for service in services:
            for key, value in service["spec"]["selector"].items():
                self.assertEqual(self.pod_labels.get(key), value)
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                self.assertIn(target, list(self.ports) + list(self.ports.values()))
                number = self.ports.get(target, target)
                self.assertEqual(port["port"], number, port["name"])
        grpc = [p for s in services for p in s["spec"]["ports"] if p["name"] == "grpc"]
        self.assertTrue(grpc)

    def test_hpa_pdb_monitor_target_the_deployment(self):
        name = self.deployment["metadata"]["name"]
        hpa = self.docs["HorizontalPodAutoscaler"][0]["spec"]
        self.assertEqual(hpa["scaleTargetRef"]["name"], name)
        self.assertEqual(hpa["scaleTargetRef"]["kind"], "Deployment")
        self.assertLessEqual(hpa["minReplicas"], hpa["maxReplicas"])
        self.assertGreaterEqual(hpa["minReplicas"], 2, "one replica cannot survive a drain")
        pdb = self.docs["PodDisruptionBudget"][0]["spec"]
        self.assertSelects(pdb["selector"], "PodDisruptionBudget")
        for monitor in self.docs.get("PodMonitor", []):
            self.assertSelects(monitor["spec"]["selector"], "PodMonitor")
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                self.assertEqual(self.ports[endpoint["port"]], self.defaults.metrics_port)
                self.assertEqual(endpoint.get("path", "/metrics"), METRICS_PATH)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="repository root")
    parser.add_argument("--server", help="sepconv-server binary to cross-check flags")
    parser.add_argument("--client", help="sepconv-client binary (its --helpfull)")
    ARGS, rest = parser.parse_known_args()
    global METRICS_PATH
    METRICS_PATH = re.search(r'RegisterCollectable\([^,]+,\s*"([^"]+)"',
                             read("server", "metrics", "metrics.cc")).group(1)
    if not ARGS.server:  # run only what can be checked, never a skip
        del ServerFlagsTest.test_binary_agrees_with_source
    if not ARGS.server or not ARGS.client:
        del ServerFlagsTest.test_help_names_flag_files_without_the_build_path
    unittest.main(argv=[sys.argv[0], "-v"] + rest)


if __name__ == "__main__":
    main()
