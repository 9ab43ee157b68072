#!/usr/bin/env python3
"""Tests of the Skydeck Helm chart (charts/skydeck).

Renders the chart with `helm template` and `helm lint --strict` for every
scenario in tests/values/*.yaml and for the render-time failures, validates
every rendered manifest against the Kubernetes JSON schemas with
`kubernetes-validate --strict`, and asserts on concrete rendered fields.
No cluster and no network: the subcharts (ingress-nginx, prometheus, grafana)
are replaced, in a temporary copy of the chart, by stubs of the same name and
version that render the values they receive as a ConfigMap.

With SKYDECK_KUBECONFIG set (scripts/chart-test.sh starts a real
kube-apiserver with scripts/kube-apiserver-up.sh), the chart is also
installed into that API server with `helm install`, and what the server's
ServiceAccount may and may not do is asked with `kubectl auth can-i`.

Environment:
  SKYDECK_HELM            helm binary (default: `helm` on PATH)
  SKYDECK_KUBECONFIG      admin kubeconfig of a real API server (optional;
                          required when CI is set)
  SKYDECK_KUBECTL         kubectl binary (default: `kubectl` on PATH)
  SKYDECK_KUBE_VALIDATE_PYTHON
                          a Python with kubernetes-validate installed (default:
                          this one); tests/kube_validate.py runs its checks

Standard library, PyYAML and unittest only. Run:
  SKYDECK_HELM=/path/to/helm python3 charts/skydeck/tests/test_chart.py [-v]
(scripts/chart-test.sh installs helm and the validator and runs this).
"""

import base64
import concurrent.futures
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.dirname(HERE)
VALUES_DIR = os.path.join(HERE, "values")
EXAMPLES_DIR = os.path.join(CHART, "examples")
HELM = os.environ.get("SKYDECK_HELM", "helm")
KUBECONFIG = os.environ.get("SKYDECK_KUBECONFIG")
KUBECTL = os.environ.get("SKYDECK_KUBECTL", "kubectl")
KUBE_VALIDATE = [
    os.environ.get("SKYDECK_KUBE_VALIDATE_PYTHON") or sys.executable,
    os.path.join(HERE, "kube_validate.py"),
]
KUBE_VERSION = "1.30.0"
NAMESPACE = "skydeck"
RELEASE = "skydeck"
HOME = "/home/skydeck"
NOTES_PROBE = "zz-test-notes-probe"

# Filled in by setUpModule.
WORK = None
CHART_COPY = None


# --------------------------------------------------------------------------
# The chart copy with stub subcharts.
# --------------------------------------------------------------------------

STUB_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: stub-{{ .Chart.Name }}-values
  namespace: {{ .Release.Namespace }}
data:
  chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
  values.json: {{ toJson .Values | quote }}
  {{- if .Values.extraScrapeConfigs }}
  # As the prometheus chart does: the string goes through tpl.
  extraScrapeConfigs: {{ tpl .Values.extraScrapeConfigs . | quote }}
  {{- end }}
"""

# Renders the chart's real NOTES.txt (helm template leaves NOTES out of its
# output) with the same values and release, so its text can be asserted.
NOTES_PROBE_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  # Per release, so that two releases can be installed side by side.
  name: {{ .Release.Name }}-%s
data:
  NOTES.txt: {{ tpl (.Files.Get "notes-probe/NOTES.txt") . | quote }}
""" % NOTES_PROBE


def make_chart_copy(dest):
    """A copy of the chart without tests or downloaded subcharts, with stub
    subcharts matching Chart.yaml's dependencies and the NOTES probe."""
    shutil.copytree(
        CHART,
        dest,
        ignore=shutil.ignore_patterns("tests", "charts", "Chart.lock", "__pycache__"),
    )
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    for dep in chart.get("dependencies", []):
        d = os.path.join(dest, "charts", dep["name"])
        os.makedirs(os.path.join(d, "templates"))
        with open(os.path.join(d, "Chart.yaml"), "w") as f:
            yaml.safe_dump(
                {"apiVersion": "v2", "name": dep["name"], "version": dep["version"]}, f
            )
        with open(os.path.join(d, "templates", "values.yaml"), "w") as f:
            f.write(STUB_TEMPLATE)
    os.makedirs(os.path.join(dest, "notes-probe"))
    shutil.copy(
        os.path.join(CHART, "templates", "NOTES.txt"),
        os.path.join(dest, "notes-probe", "NOTES.txt"),
    )
    with open(os.path.join(dest, "templates", NOTES_PROBE + ".yaml"), "w") as f:
        f.write(NOTES_PROBE_TEMPLATE)


def setUpModule():
    global WORK, CHART_COPY
    WORK = tempfile.mkdtemp(prefix="skydeck-chart-test-")
    CHART_COPY = os.path.join(WORK, "skydeck")
    make_chart_copy(CHART_COPY)
    # Render the scenarios in parallel up front (the results are cached).
    parallel(lambda f: render(*f, release=release_for(f)), [()] + [(f,) for f in scenario_files()])


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def scenario_files():
    return sorted(f for f in os.listdir(VALUES_DIR) if f.endswith(".yaml"))


def release_for(files):
    """The second release of the shared-ingress pair has its own name."""
    return "skydeck-b" if any("team-b" in f for f in files) else RELEASE


def parallel(fn, items):
    """fn over items on a few threads (each call runs a helm process)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as ex:
        return list(ex.map(fn, items))


# --------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------


class Render:
    """The output of one `helm template`."""

    def __init__(self, args, proc):
        self.args = args
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.docs = []
        self.notes = None
        if self.rc == 0:
            for doc in yaml.safe_load_all(self.stdout):
                if not doc:
                    continue
                if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].endswith("-" + NOTES_PROBE):
                    self.notes = doc["data"]["NOTES.txt"]
                else:
                    self.docs.append(doc)

    def manifests(self):
        """The rendered YAML without the NOTES probe."""
        return yaml.safe_dump_all(self.docs, sort_keys=False)

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def find(self, kind, name):
        for d in self.docs:
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
        return None

    def get(self, kind, name):
        d = self.find(kind, name)
        if d is None:
            have = sorted("%s/%s" % (x["kind"], x["metadata"]["name"]) for x in self.docs)
            raise AssertionError("no %s/%s rendered; have %s" % (kind, name, have))
        return d

    def names(self, kind):
        return sorted(d["metadata"]["name"] for d in self.all(kind))

    def stub_values(self, chart):
        cm = self.find("ConfigMap", "stub-%s-values" % chart)
        return None if cm is None else json.loads(cm["data"]["values.json"])

    # The API server pod.
    def deployment(self, fullname=RELEASE):
        return self.get("Deployment", fullname + "-api-server")

    def pod(self, fullname=RELEASE):
        return self.deployment(fullname)["spec"]["template"]["spec"]

    def container(self, fullname=RELEASE, name="skydeck-api"):
        for c in self.pod(fullname)["containers"]:
            if c["name"] == name:
                return c
        raise AssertionError("no container " + name)

    def init_container(self, name, fullname=RELEASE):
        for c in self.pod(fullname).get("initContainers") or []:
            if c["name"] == name:
                return c
        raise AssertionError("no init container " + name)

    def env(self, fullname=RELEASE):
        return {e["name"]: e for e in self.container(fullname).get("env") or []}

    def env_value(self, name, fullname=RELEASE):
        return self.env(fullname)[name]["value"]

    def env_secret(self, name, fullname=RELEASE):
        """(secret name, key) an env var is read from."""
        ref = self.env(fullname)[name]["valueFrom"]["secretKeyRef"]
        return ref["name"], ref["key"]

    def mounts(self, fullname=RELEASE):
        return {m["mountPath"]: m for m in self.container(fullname).get("volumeMounts") or []}

    def volumes(self, fullname=RELEASE):
        return {v["name"]: v for v in self.pod(fullname).get("volumes") or []}

    def volume_at(self, path, fullname=RELEASE):
        """The pod volume mounted at path in the API container."""
        m = self.mounts(fullname)[path]
        return self.volumes(fullname)[m["name"]], m

    def script(self, fullname=RELEASE):
        c = self.container(fullname)
        self_args = c["args"]
        assert self_args[:2] == ["/bin/sh", "-c"], self_args
        return self_args[2]


@functools.lru_cache(maxsize=None)
def _helm_template(args):
    cmd = [HELM, "template", args[0], CHART_COPY, "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    cmd += list(args[1:])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return Render(args, proc)


def render(*values_files, release=RELEASE, sets=(), set_json=(), set_strings=(), extra=()):
    args = [release]
    for f in values_files:
        args += ["-f", os.path.join(VALUES_DIR, f)]
    for s in sets:
        args += ["--set", s]
    for s in set_json:
        args += ["--set-json", s]
    for s in set_strings:
        args += ["--set-string", s]
    args += list(extra)
    return _helm_template(tuple(args))


def ok(*a, **kw):
    r = render(*a, **kw)
    if r.rc != 0:
        raise AssertionError("helm template %s failed:\n%s" % (" ".join(r.args), r.stderr))
    return r


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True)


# Default-values render with a login mode on, as in the guide.
BASIC = "basic-auth.yaml"


# --------------------------------------------------------------------------
# Tools and the chart as a whole.
# --------------------------------------------------------------------------


class ToolsTest(unittest.TestCase):
    def test_helm_runs(self):
        p = helm("version", "--short")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^v[34]\.")

    def test_validator_rejects_bad_manifests(self):
        # The validator must be able to fail, or the schema checks below prove nothing.
        bad_type = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                    "spec": {"ports": [{"port": "abc"}]}}
        unknown_field = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                         "data": {}, "bogus": 1}
        for doc in (bad_type, unknown_field):
            path = os.path.join(WORK, "bad.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(doc, f)
            p = subprocess.run(KUBE_VALIDATE + ["--strict", "-k", KUBE_VERSION, "--quiet", path],
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn("ERROR", p.stdout)

    def test_chart_metadata(self):
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            chart = yaml.safe_load(f)
        self.assertEqual(chart["name"], "skydeck")
        self.assertEqual(chart["version"], "0.1.0")
        self.assertEqual(chart["appVersion"], "0.1.0")
        deps = {d["name"]: d for d in chart["dependencies"]}
        self.assertEqual(deps["ingress-nginx"]["version"], "4.11.3")
        self.assertEqual(deps["prometheus"]["version"], "27.20.0")
        self.assertEqual(deps["grafana"]["version"], "9.2.2")
        for name, d in deps.items():
            self.assertEqual(d["condition"], name + ".enabled")
            self.assertTrue(d["repository"].startswith("https://"))

    def test_committed_subcharts_are_placeholders(self):
        # One placeholder per dependency, of its name and version, that only
        # fails (scripts/chart-placeholders.sh); nothing real is vendored.
        import tarfile
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            deps = yaml.safe_load(f)["dependencies"]
        committed = sorted(os.listdir(os.path.join(CHART, "charts")))
        self.assertEqual(committed, sorted("%s-%s.tgz" % (d["name"], d["version"]) for d in deps))
        for d in deps:
            with tarfile.open(os.path.join(CHART, "charts", "%s-%s.tgz" % (d["name"], d["version"]))) as t:
                self.assertEqual(sorted(t.getnames()),
                                 [d["name"] + "/Chart.yaml", d["name"] + "/templates/placeholder.yaml"])
                meta = yaml.safe_load(t.extractfile(d["name"] + "/Chart.yaml"))
                template = t.extractfile(d["name"] + "/templates/placeholder.yaml").read().decode()
            self.assertEqual((meta["name"], meta["version"]), (d["name"], d["version"]))
            self.assertTrue(template.startswith("{{- fail "), template)

    def test_package_leaves_tests_out_and_keeps_dashboard(self):
        out = os.path.join(WORK, "pkg")
        os.makedirs(out, exist_ok=True)
        p = helm("package", CHART_COPY, "-d", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        import tarfile
        with tarfile.open(os.path.join(out, "skydeck-0.1.0.tgz")) as t:
            names = t.getnames()
        self.assertIn("skydeck/dashboards/skydeck-overview.json", names)
        self.assertIn("skydeck/values.schema.json", names)
        self.assertFalse([n for n in names if "/tests/" in n or "/examples/" in n], names)


ALL_SUBCHARTS_OFF = ("ingress-nginx.enabled=false", "prometheus.enabled=false", "grafana.enabled=false")


def committed_chart_copy():
    """The chart as a clone has it: placeholders, no downloaded subcharts."""
    dest = os.path.join(WORK, "committed", "skydeck")
    if not os.path.isdir(dest):
        shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    return dest


class AirGappedTest(unittest.TestCase):
    """A clone installs with no download while every subchart is off; an
    enabled one fails and says how to get it."""

    def test_renders_with_every_subchart_off(self):
        p = helm("template", "skydeck", committed_chart_copy(), "-n", NAMESPACE,
                 *[a for s in ALL_SUBCHARTS_OFF for a in ("--set", s)])
        self.assertEqual(p.returncode, 0, p.stderr)
        kinds = [d["kind"] for d in yaml.safe_load_all(p.stdout) if d]
        self.assertIn("Deployment", kinds)

    def test_an_enabled_subchart_says_to_download_it(self):
        for name in ("ingress-nginx", "prometheus", "grafana"):
            sets = [s for s in ALL_SUBCHARTS_OFF if not s.startswith(name + ".")]
            sets.append(name + ".enabled=true")
            p = helm("template", "skydeck", committed_chart_copy(), "-n", NAMESPACE,
                     *[a for s in sets for a in ("--set", s)])
            with self.subTest(subchart=name):
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("%s.enabled=true needs the %s chart" % (name, name), p.stderr)
                self.assertIn("helm dependency build charts/skydeck", p.stderr)


class LintTest(unittest.TestCase):
    def test_lint_strict_defaults(self):
        p = helm("lint", "--strict", CHART_COPY)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_lint_strict_every_scenario(self):
        files = scenario_files()
        results = parallel(lambda f: helm("lint", "--strict", CHART_COPY, "-f", os.path.join(VALUES_DIR, f)), files)
        for f, p in zip(files, results):
            with self.subTest(values=f):
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("1 chart(s) linted, 0 chart(s) failed", p.stdout)


class KubernetesSchemaTest(unittest.TestCase):
    """Every manifest of every scenario passes kubernetes-validate --strict."""

    def test_every_scenario_validates(self):
        files = []
        cases = [("defaults", ())] + [(f, (f,)) for f in scenario_files()]
        cases += [
            ("metrics-dedicated", ("metrics.yaml",), ("prometheus.useDedicatedScrapeConfig=true",)),
            ("oauth2-grafana", ("oauth2-proxy.yaml",), ("grafana.enabled=true",)),
            ("no-storage", (BASIC,), ("storage.enabled=false", "ingress.tls.enabled=true")),
            ("upgrade", (BASIC,), (), ("--is-upgrade",)),
        ]
        for case in cases:
            name, vfiles = case[0], case[1]
            sets = case[2] if len(case) > 2 else ()
            extra = case[3] if len(case) > 3 else ()
            r = ok(*vfiles, sets=sets, extra=extra, release=release_for(vfiles))
            self.assertTrue(r.docs, name)
            path = os.path.join(WORK, "rendered-%s.yaml" % name.replace(".yaml", ""))
            with open(path, "w") as f:
                f.write(r.manifests())
            files.append(path)
        files.append(os.path.join(EXAMPLES_DIR, "persistent-volume.yaml"))
        p = subprocess.run(KUBE_VALIDATE + ["--strict", "-k", KUBE_VERSION] + files,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        # Each file's resources were checked against a schema; only the
        # ServiceMonitor CRD has none.
        warns = [l for l in lines if l.startswith("WARN")]
        self.assertTrue(warns)
        for w in warns:
            self.assertIn("Couldn't find schema for kind ServiceMonitor", w)
        passed = [l for l in lines if l.startswith("INFO") and "passed" in l]
        self.assertGreater(len(passed), 200)
        for f in files:
            self.assertTrue(any(f in l for l in passed), f)


class ValuesSchemaTest(unittest.TestCase):
    """values.schema.json rejects misspelt value names (and wrong types)."""

    def assertRejected(self, *sets, needle=None, set_json=()):
        r = render(BASIC, sets=sets, set_json=set_json)
        self.assertNotEqual(r.rc, 0, "accepted: %s" % (sets or set_json,))
        self.assertRegex(r.stderr, r"(?i)schema|additional prop|not allowed|value must be|got|want|expected")
        if needle:
            self.assertIn(needle, r.stderr)

    def test_typos_rejected_at_every_level(self):
        typos = [
            ("apiServce.image=x", "apiServce"),
            ("apiService.imagee=x", "imagee"),
            ("apiService.metrics.enable=true", "enable"),
            ("apiService.metrics.serviceMonitor.intervall=1m", "intervall"),
            ("apiService.resources.request.cpu=1", "request"),
            ("ingress.authCredential=x", "authCredential"),
            ("ingress.oauth2-proxy.client_id=x", "client_id"),
            ("ingress.tls.secret=x", "secret"),
            ("auth.externalProxy.header=x", "header"),
            ("auth.serviceAccount.enable=true", "enable"),
            ("auth.oauth.clientId=x", "clientId"),
            ("storage.storageClass=x", "storageClass"),
            ("rbac.createe=true", "createe"),
            ("kubernetesCredentials.inClusterNamespace=x", "inClusterNamespace"),
            ("awsCredentials.secretName=x", "secretName"),
            ("gcpCredentials.project=x", "project"),
            ("runpodCredentials.secretName=x", "secretName"),
            ("lambdaCredentials.secretName=x", "secretName"),
            ("nebiusCredentials.tenant=x", "tenant"),
            ("vastCredentials.secretName=x", "secretName"),
            ("r2Credentials.secretName=x", "secretName"),
            ("global.imageRegistery=x", "imageRegistery"),
            ("coreweaveCredentials.enabled=true", "coreweaveCredentials"),
        ]
        # helm lists every schema violation, so one render checks them all.
        r = render(BASIC, sets=[s for s, _ in typos])
        self.assertNotEqual(r.rc, 0)
        lines = [l for l in r.stderr.splitlines() if "not allowed" in l]
        for s, word in typos:
            with self.subTest(set=s):
                self.assertTrue([l for l in lines if re.search(r"\b%s\b" % re.escape(word), l)],
                                "%s not reported in:\n%s" % (s, r.stderr))
        # And alone, each one fails the render.
        for s, word in typos[:3]:
            with self.subTest(alone=s):
                self.assertRejected(s, needle=word)

    def test_typo_rejected_by_lint_too(self):
        p = helm("lint", "--strict", CHART_COPY, "--set", "storage.sise=20Gi")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sise", p.stdout + p.stderr)

    def test_wrong_types_and_enums_rejected(self):
        bad = ["apiService.replicas=two", "storage.accessMode=ReadWriteSometimes",
               "apiService.upgradeStrategy=BlueGreen", "apiService.metrics.port=99999",
               "ingress.path=no-slash", "auth.externalProxy.headerFormat=xml",
               "ingress.authCredentials=no-colon-here"]
        for s, r in zip(bad, parallel(lambda s: render(BASIC, sets=[s]), bad)):
            with self.subTest(set=s):
                self.assertNotEqual(r.rc, 0, "accepted: " + s)
                self.assertIn(s.split("=")[0].split(".")[-1], r.stderr)
        with self.subTest("trustedProxies entry"):
            self.assertRejected(set_json=['apiService.trustedProxies=["10.0.0.0"]'])

    def test_subchart_blocks_stay_open(self):
        r = ok(BASIC, sets=["ingress-nginx.controller.replicaCount=2",
                            "prometheus.server.global.scrape_interval=15s",
                            "grafana.adminUser=root"])
        self.assertEqual(r.stub_values("ingress-nginx")["controller"]["replicaCount"], 2)

    def test_schema_is_strict_at_every_chart_level(self):
        with open(os.path.join(CHART, "values.schema.json")) as f:
            schema = json.load(f)
        open_blocks = {"ingress-nginx", "prometheus", "grafana"}
        # k8s objects passed through as they are (validated after rendering).
        passthrough = {"affinity", "selector", "podSecurityContext", "securityContext",
                       "requests", "limits", "annotations", "additionalLabels",
                       "nodeSelector", "serviceAccountAnnotations", "rules"}

        def walk(node, path):
            props = node.get("properties")
            if props is None:
                return
            if path and path[-1] in open_blocks and len(path) == 1:
                return
            self.assertIs(node.get("additionalProperties"), False, ".".join(path) or "<root>")
            for k, sub in props.items():
                if k in passthrough:
                    continue
                walk(sub, path + [k])

        walk(schema, [])
        with open(os.path.join(CHART, "values.yaml")) as f:
            values = yaml.safe_load(f)

        def cover(v, s, path):
            # Every key of values.yaml is declared in the schema.
            if not isinstance(v, dict) or "properties" not in s or (path and path[0] in open_blocks):
                return
            for k, sub in v.items():
                self.assertIn(k, s["properties"], ".".join(path + [k]))
                cover(sub, s["properties"][k], path + [k])

        cover(values, schema, [])


# --------------------------------------------------------------------------
# Invariants of every render.
# --------------------------------------------------------------------------


class InvariantsTest(unittest.TestCase):
    def each(self):
        yield "defaults", ok()
        for f in scenario_files():
            yield f, ok(f, release=release_for([f]))

    def test_pod_is_consistent(self):
        for name, r in self.each():
            fullname = r.all("Deployment")[0]["metadata"]["name"].rsplit("-api-server", 1)[0]
            pod = r.pod(fullname)
            with self.subTest(scenario=name):
                vols = [v["name"] for v in pod["volumes"]]
                self.assertEqual(len(vols), len(set(vols)), vols)
                for c in pod["containers"] + (pod.get("initContainers") or []):
                    mounts = c.get("volumeMounts") or []
                    paths = [m["mountPath"] for m in mounts]
                    self.assertEqual(len(paths), len(set(paths)), (c["name"], paths))
                    for m in mounts:
                        self.assertIn(m["name"], vols, (c["name"], m))
                    envs = [e["name"] for e in c.get("env") or []]
                    self.assertEqual(len(envs), len(set(envs)), (c["name"], envs))
                api = r.container(fullname)
                # Skydeck's names, never SkyPilot's.
                for e in api.get("env") or []:
                    self.assertFalse(e["name"].startswith(("SKYPILOT_", "SKY_", "ENABLE_SERVICE")), e)
                self.assertEqual(r.env_value("SKYDECK_HOME", fullname), HOME + "/.skydeck")
                sc = pod["securityContext"]
                self.assertEqual(sc["runAsUser"], 1000)
                self.assertTrue(sc["runAsNonRoot"])
                self.assertEqual(api["securityContext"]["capabilities"]["drop"], ["ALL"])
                self.assertIs(api["securityContext"]["allowPrivilegeEscalation"], False)
                # PID 1 hands the secrets over and becomes tini without them.
                self.assertEqual(api["command"][:2], ["/bin/sh", "-c"])
                self.assertIn("/usr/bin/tini --", api["command"][2])
                self.assertEqual(r.mounts(fullname)["/var/skydeck/handoff"]["name"], "secret-handoff")
                self.assertEqual(r.volumes(fullname)["secret-handoff"]["emptyDir"]["medium"], "Memory")
                for probe in ("livenessProbe", "readinessProbe"):
                    self.assertEqual(api[probe]["httpGet"], {"path": "/api/health", "port": 46580})
                self.assertEqual(api["livenessProbe"]["periodSeconds"], 30)
                rp = api["readinessProbe"]
                self.assertEqual((rp["periodSeconds"], rp["initialDelaySeconds"], rp["failureThreshold"]), (5, 5, 3))
                self.assertEqual(api["ports"][0], {"name": "http", "containerPort": 46580, "protocol": "TCP"})
                # The pod runs as the ServiceAccount the chart made, if it made one.
                if r.all("ServiceAccount"):
                    self.assertEqual(r.names("ServiceAccount"), [pod["serviceAccountName"]])

    def test_scripts_are_valid_shell(self):
        for name, r in self.each():
            pod = r.all("Deployment")[0]["spec"]["template"]["spec"]
            for c in pod["containers"] + (pod.get("initContainers") or []):
                args = c.get("args") or []
                script = None
                if args[:2] == ["/bin/sh", "-c"]:
                    script = args[2]
                elif c.get("command") == ["/bin/sh", "-c"]:
                    script = args[0]
                if script is None:
                    continue
                with self.subTest(scenario=name, container=c["name"]):
                    p = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
                    self.assertEqual(p.returncode, 0, p.stderr + script)

    def test_start_script_order(self):
        for name, r in self.each():
            fullname = r.all("Deployment")[0]["metadata"]["name"].rsplit("-api-server", 1)[0]
            s = r.script(fullname)
            with self.subTest(scenario=name):
                lines = s.splitlines()
                self.assertEqual(lines[0], "set -e")
                self.assertTrue(lines[-1].startswith("exec skydeck api start --deploy --foreground"), lines[-1])
                # The seed config is copied only when none is there (-s: missing or empty).
                self.assertIn('if [ -s "$SKYDECK_HOME/config.yaml" ]; then', s)
                self.assertIn('cp /var/skydeck/config/config.yaml "$SKYDECK_HOME/config.yaml"', s)
                self.assertLess(s.index('mkdir -p "$SKYDECK_HOME"'), s.index("cp /var/skydeck/config"))

    def test_every_resource_is_named_from_fullname(self):
        for name, r in self.each():
            dep = r.all("Deployment")[0]["metadata"]["name"]
            fullname = dep.rsplit("-api-server", 1)[0]
            with self.subTest(scenario=name):
                for d in r.docs:
                    n = d["metadata"]["name"]
                    if n.startswith("stub-") or d["kind"] == "Namespace":
                        continue
                    self.assertIn(fullname, n, "%s/%s" % (d["kind"], n))
                    self.assertLessEqual(len(n), 63 if d["kind"] == "Service" else 253)
                    self.assertEqual(d["metadata"]["labels"]["app.kubernetes.io/instance"],
                                     r.args[0], n)


# --------------------------------------------------------------------------
# Scenarios of the guides.
# --------------------------------------------------------------------------


# SkyPilot's documented minimum (cloud-permissions/kubernetes.rst) for the
# identity that launches clusters, plus the pods' own
# ServiceAccount (the backend makes skypilot-service-account when missing).
DEFAULT_NAMESPACE_RULES = [
    {"apiGroups": [""], "resources": ["pods", "pods/status", "pods/exec", "pods/portforward"],
     "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create"]},
]
DEFAULT_CLUSTER_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
]


class DefaultsTest(unittest.TestCase):
    def test_defaults(self):
        r = ok()
        dep = r.deployment()
        self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})
        self.assertEqual(dep["spec"]["replicas"], 1)
        api = r.container()
        self.assertEqual(api["image"], "skydeck/skydeck:0.1.0")
        self.assertEqual(api["resources"]["requests"], {"cpu": "500m", "memory": "512Mi"})
        self.assertEqual(api["resources"]["limits"], {"memory": "4Gi"})
        self.assertEqual(api["readinessProbe"]["successThreshold"], 1)
        env = r.env()
        self.assertEqual(env["SKYDECK_ENABLE_SERVICE_ACCOUNTS"]["value"], "true")
        self.assertEqual(env["SKYDECK_GRACE_PERIOD_SECONDS"]["value"], "60")
        for absent in ("SKYDECK_ENABLE_BASIC_AUTH", "SKYDECK_INGRESS_BASIC_AUTH",
                       "SKYDECK_EXTERNAL_PROXY_AUTH", "SKYDECK_TRUSTED_PROXIES",
                       "SKYDECK_INSECURE_NO_AUTH", "SKYDECK_DB_CONNECTION_URI", "SKYDECK_METRICS"):
            self.assertNotIn(absent, env)
        self.assertEqual(r.script().splitlines()[-1], "exec skydeck api start --deploy --foreground")
        self.assertEqual(r.pod()["terminationGracePeriodSeconds"], 60)
        # SkyPilot's default: the server launches into its own cluster, with its token.
        self.assertIs(r.pod()["automountServiceAccountToken"], True)
        # State volume: PVC <N>-state, subPaths .skydeck and .ssh.
        pvc = r.get("PersistentVolumeClaim", "skydeck-state")
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "10Gi")
        self.assertNotIn("storageClassName", pvc["spec"])
        vol, m = r.volume_at(HOME + "/.skydeck")
        self.assertEqual(vol["persistentVolumeClaim"]["claimName"], "skydeck-state")
        self.assertEqual(m["subPath"], ".skydeck")
        self.assertEqual(r.volume_at(HOME + "/.ssh")[1]["subPath"], ".ssh")
        cfg_vol, _ = r.volume_at("/var/skydeck/config")
        self.assertEqual(cfg_vol["configMap"]["name"], "skydeck-config")
        self.assertEqual(r.get("ConfigMap", "skydeck-config")["data"]["config.yaml"].strip(), "{}")
        svc = r.get("Service", "skydeck-api-service")
        self.assertEqual(svc["spec"]["ports"], [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
        self.assertEqual(svc["spec"]["selector"], {"app": "skydeck-api"})
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], {"app": "skydeck-api"})
        ing = r.get("Ingress", "skydeck-ingress")
        self.assertEqual(ing["spec"]["ingressClassName"], "nginx")
        rule = ing["spec"]["rules"][0]
        self.assertNotIn("host", rule)
        self.assertEqual(rule["http"]["paths"][0]["path"], "/")
        self.assertEqual(rule["http"]["paths"][0]["pathType"], "Prefix")
        ann = ing["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-body-size"], "1000m")
        self.assertNotIn("nginx.ingress.kubernetes.io/auth-type", ann)
        # ingress-nginx with SkyPilot's passthrough defaults; no prometheus or grafana.
        nginx = r.stub_values("ingress-nginx")
        self.assertIs(nginx["controller"]["allowSnippetAnnotations"], True)
        self.assertEqual(nginx["controller"]["service"]["type"], "LoadBalancer")
        self.assertEqual(nginx["controller"]["service"]["annotations"]
                         ["service.beta.kubernetes.io/aws-load-balancer-type"], "nlb")
        self.assertIn("$connection_upgrade", nginx["controller"]["config"]["http-snippet"])
        self.assertIsNone(r.stub_values("prometheus"))
        self.assertIsNone(r.stub_values("grafana"))
        self.assertEqual(r.names("ServiceMonitor"), [])
        self.assertIsNone(r.find("Secret", "skydeck-basic-auth"))
        self.assertIsNone(r.find("Secret", "skydeck-initial-basic-auth"))

    def test_rbac_defaults(self):
        # SkyPilot's documented minimum for the identity that launches
        # clusters, bound to the server's ServiceAccount, and nothing more.
        r = ok()
        sa = r.get("ServiceAccount", "skydeck-api-sa")
        self.assertEqual(r.pod()["serviceAccountName"], "skydeck-api-sa")
        self.assertNotIn("annotations", sa["metadata"])
        self.assertIs(sa["automountServiceAccountToken"], True)
        self.assertEqual(r.env_value("SKYDECK_IN_CLUSTER_NAMESPACE"), NAMESPACE)
        role = r.get("Role", "skydeck-api-role")
        self.assertEqual(role["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(role["rules"], DEFAULT_NAMESPACE_RULES)
        binding = r.get("RoleBinding", "skydeck-api-role-binding")
        self.assertEqual(binding["roleRef"], {"kind": "Role", "name": "skydeck-api-role",
                                              "apiGroup": "rbac.authorization.k8s.io"})
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "skydeck-api-sa",
                                                "namespace": NAMESPACE}])
        cr = r.get("ClusterRole", "skydeck-skydeck-api-role")
        self.assertEqual(cr["rules"], DEFAULT_CLUSTER_RULES)
        # Read-only cluster-wide, and no pods outside the namespace of clusters.
        for rule in cr["rules"]:
            self.assertEqual(rule["verbs"], ["get", "list", "watch"])
            self.assertNotIn("pods", rule["resources"])
        crb = r.get("ClusterRoleBinding", "skydeck-skydeck-api-role-binding")
        self.assertEqual(crb["roleRef"]["name"], "skydeck-skydeck-api-role")
        self.assertEqual(r.names("Role"), ["skydeck-api-role"])
        self.assertEqual(r.names("Namespace"), [])

    def test_without_the_api_server_cluster_nothing_is_granted(self):
        # Whatever the rules say: no token, no Role, no ClusterRole.
        for extra in ([], ["rbac.manageRbacPolicies=true", "rbac.manageSystemComponents=true"]):
            with self.subTest(extra=extra):
                r = ok(sets=["kubernetesCredentials.useApiServerCluster=false", *extra])
                self.assertIs(r.pod()["automountServiceAccountToken"], False)
                self.assertIs(r.get("ServiceAccount", "skydeck-api-sa")["automountServiceAccountToken"], False)
                self.assertNotIn("SKYDECK_IN_CLUSTER_NAMESPACE", r.env())
                for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Namespace"):
                    self.assertEqual(r.names(kind), [], kind)

    def test_rules_are_overridable(self):
        # An empty list renders no Role (or ClusterRole) but keeps the token.
        r = ok(set_json=["rbac.namespaceRules=[]", "rbac.clusterRules=[]"])
        self.assertIs(r.pod()["automountServiceAccountToken"], True)
        for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
            self.assertEqual(r.names(kind), [], kind)


class BasicAuthTest(unittest.TestCase):
    def test_ingress_basic_auth_from_credentials(self):
        r = ok("basic-auth.yaml")
        sec = r.get("Secret", "skydeck-basic-auth")
        self.assertEqual(sec["stringData"]["auth"], "alice:$apr1$ZnDrPhMI$5iVyvGXkNAo1H/K26Pu6g.")
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-type"], "basic")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-secret"], "skydeck-basic-auth")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-realm"], "Skydeck API Server")
        env = r.env()
        self.assertEqual(env["SKYDECK_INGRESS_BASIC_AUTH"]["value"], "true")
        self.assertEqual(env["SKYDECK_TRUSTED_PROXIES"]["value"], "10.244.0.0/16,fd00:10:244::/56")
        # Bearer tokens cannot pass the ingress's basic auth: off, as SkyPilot does.
        self.assertNotIn("SKYDECK_ENABLE_SERVICE_ACCOUNTS", env)
        self.assertNotIn("SKYDECK_ENABLE_BASIC_AUTH", env)
        self.assertNotIn("SKYDECK_EXTERNAL_PROXY_AUTH", env)

    def test_default_trusted_proxies_are_the_private_ranges(self):
        r = ok("basic-auth-secret.yaml")
        self.assertEqual(r.env_value("SKYDECK_TRUSTED_PROXIES"),
                         "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fd00::/8")

    def test_ingress_basic_auth_from_existing_secret(self):
        r = ok("basic-auth-secret.yaml")
        self.assertIsNone(r.find("Secret", "skydeck-basic-auth"))
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-secret"], "skydeck-htpasswd")
        self.assertEqual(r.env_value("SKYDECK_INGRESS_BASIC_AUTH"), "true")

    def test_service_accounts_value(self):
        r = ok(sets=["auth.serviceAccount.enabled=false", "apiService.enableUserManagement=true"])
        self.assertNotIn("SKYDECK_ENABLE_SERVICE_ACCOUNTS", r.env())
        r = ok(sets=["apiService.enableServiceAccounts=false", "apiService.enableUserManagement=true"])
        self.assertNotIn("SKYDECK_ENABLE_SERVICE_ACCOUNTS", r.env())
        # auth.serviceAccount.enabled wins over the deprecated value.
        r = ok(sets=["apiService.enableServiceAccounts=false", "auth.serviceAccount.enabled=true"])
        self.assertEqual(r.env_value("SKYDECK_ENABLE_SERVICE_ACCOUNTS"), "true")

    def test_user_management(self):
        r = ok("user-management.yaml")
        env = r.env()
        self.assertEqual(env["SKYDECK_ENABLE_BASIC_AUTH"]["value"], "true")
        self.assertEqual(r.env_secret("SKYDECK_INITIAL_BASIC_AUTH"), ("skydeck-initial-basic-auth", "auth"))
        self.assertEqual(r.get("Secret", "skydeck-initial-basic-auth")["stringData"]["auth"],
                         "admin:$2y$05$8OqsxFV4SXJi6JBOI3KPGuJGLqm7X3Zxry3QdUACTNa6F/dyfQ7ym")
        self.assertEqual(env["SKYDECK_ENABLE_SERVICE_ACCOUNTS"]["value"], "true")
        # The server checks passwords: the ingress does no basic auth although
        # authCredentials is set, and no ingress secret is made.
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertNotIn("nginx.ingress.kubernetes.io/auth-type", ann)
        self.assertIsNone(r.find("Secret", "skydeck-basic-auth"))
        self.assertNotIn("SKYDECK_INGRESS_BASIC_AUTH", env)
        self.assertNotIn("SKYDECK_TRUSTED_PROXIES", env)

    def test_user_management_from_existing_secret(self):
        r = ok("user-management-secret.yaml")
        self.assertEqual(r.env_secret("SKYDECK_INITIAL_BASIC_AUTH"), ("skydeck-initial-admin", "auth"))
        self.assertIsNone(r.find("Secret", "skydeck-initial-basic-auth"))

    def test_user_management_default_admin_is_valid_htpasswd(self):
        r = ok(sets=["apiService.enableUserManagement=true"])
        line = r.get("Secret", "skydeck-initial-basic-auth")["stringData"]["auth"]
        self.assertRegex(line, r"^skydeck:\$apr1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}$")
        self.assertIn("default password", r.notes)


class ExposureTest(unittest.TestCase):
    def test_nodeport_reaches_subchart(self):
        r = ok("nodeport.yaml")
        svc = r.stub_values("ingress-nginx")["controller"]["service"]
        self.assertEqual(svc["type"], "NodePort")
        self.assertEqual(svc["nodePorts"], {"http": 30050, "https": 30051})
        # The LB annotations are still passed (harmless on NodePort).
        self.assertIn("cloud.google.com/l4-rbs", svc["annotations"])
        self.assertIn("ENDPOINT=http://$NODE_IP:30050", r.notes)
        self.assertIsNone(r.find("Service", "skydeck-ingress-controller-np"))

    def test_nodeport_without_fixed_ports_asks_the_service(self):
        r = ok(BASIC, sets=["ingress-nginx.controller.service.type=NodePort"])
        self.assertIn("kubectl get svc skydeck-ingress-nginx-controller -n skydeck", r.notes)
        self.assertIn('{.spec.ports[?(@.name=="http")].nodePort}', r.notes)

    def test_legacy_nodeport_service(self):
        r = ok("nodeport-legacy.yaml")
        svc = r.get("Service", "skydeck-ingress-controller-np")
        self.assertEqual(svc["spec"]["type"], "NodePort")
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        self.assertEqual((ports["http"]["port"], ports["http"]["nodePort"]), (80, 30080))
        self.assertEqual((ports["https"]["port"], ports["https"]["nodePort"]), (443, 30443))
        self.assertEqual(svc["spec"]["selector"], {
            "app.kubernetes.io/component": "controller",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/name": "ingress-nginx"})
        self.assertEqual(r.stub_values("ingress-nginx")["controller"]["service"]["type"], "ClusterIP")
        self.assertIn("ENDPOINT=http://$NODE_IP:30080", r.notes)

    def test_loadbalancer_notes(self):
        r = ok(BASIC)
        self.assertIn("kubectl get svc skydeck-ingress-nginx-controller -n skydeck -o jsonpath="
                      "'{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}'", r.notes)
        self.assertIn("ENDPOINT=http://$HOST\n", r.notes)
        self.assertIn("sky api login -e http://USER:PASSWORD@${ENDPOINT#*://}", r.notes)
        self.assertIn("skydeck api login -e http://USER:PASSWORD@${ENDPOINT#*://}", r.notes)
        # The ingress asks for the password on every path, /api/health too.
        self.assertIn("curl -u USER:PASSWORD $ENDPOINT/api/health", r.notes)
        self.assertIn("curl $ENDPOINT/api/health", ok("user-management.yaml").notes)

    def test_controller_name_follows_subchart_naming(self):
        # ingress-nginx names itself <release>-ingress-nginx unless the release
        # name already contains "ingress-nginx".
        r = ok(BASIC, release="my-ingress-nginx")
        self.assertIn("svc my-ingress-nginx-controller ", r.notes)

    def test_two_servers_share_one_ingress(self):
        a = ok("shared-ingress-team-a.yaml", release="skydeck-a")
        b = ok("shared-ingress-team-b.yaml", release="skydeck-b")
        for r, name, path in ((a, "skydeck-a", "/team-a"), (b, "skydeck-b", "/team-b")):
            ing = r.get("Ingress", name + "-ingress")
            p = ing["spec"]["rules"][0]["http"]["paths"][0]
            self.assertEqual(p["path"], path + "(/|$)(.*)")
            self.assertEqual(p["pathType"], "ImplementationSpecific")
            self.assertEqual(p["backend"]["service"]["name"], name + "-api-service")
            ann = ing["metadata"]["annotations"]
            self.assertEqual(ann["nginx.ingress.kubernetes.io/rewrite-target"], "/$2")
            self.assertEqual(ann["skydeck.io/ingress-path"], path)
            self.assertEqual(ing["spec"]["ingressClassName"], "nginx")
            self.assertIn("ENDPOINT=http://$HOST" + path + "\n", r.notes)
        # Only the first release brings the controller.
        self.assertIsNotNone(a.stub_values("ingress-nginx"))
        self.assertIsNone(b.stub_values("ingress-nginx"))
        # Nothing cluster-wide collides.
        for kind in ("ClusterRole", "ClusterRoleBinding"):
            self.assertFalse(set(a.names(kind)) & set(b.names(kind)), kind)

    def test_custom_ingress_class(self):
        r = ok("custom-ingress-class.yaml")
        ing = r.get("Ingress", "skydeck-ingress")
        self.assertEqual(ing["spec"]["ingressClassName"], "internal-nginx")
        self.assertEqual(ing["spec"]["rules"][0]["host"], "skydeck.example.com")
        self.assertEqual(ing["spec"]["tls"], [{"secretName": "skydeck-tls-secrets", "hosts": ["skydeck.example.com"]}])
        ann = ing["metadata"]["annotations"]
        self.assertEqual(ann["cert-manager.io/cluster-issuer"], "letsencrypt-prod")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/whitelist-source-range"], "10.0.0.0/8")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-secret"], "skydeck-htpasswd")
        self.assertIsNone(r.stub_values("ingress-nginx"))
        self.assertIn("ENDPOINT=https://skydeck.example.com\n", r.notes)

    def test_user_annotations_win(self):
        r = ok(BASIC, sets=["ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-body-size=5g"])
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-body-size"], "5g")

    def test_no_ingress(self):
        r = ok("insecure-no-auth.yaml")
        self.assertEqual(r.names("Ingress"), [])
        self.assertIn("kubectl port-forward -n skydeck svc/skydeck-api-service 46581:80", r.notes)
        self.assertIn("ENDPOINT=http://127.0.0.1:46581", r.notes)
        self.assertEqual(r.env_value("SKYDECK_INSECURE_NO_AUTH"), "true")
        self.assertNotIn("SKYDECK_ENABLE_SERVICE_ACCOUNTS", r.env())
        self.assertIn("NONE (apiService.insecureNoAuth)", r.notes)


class CredentialsTest(unittest.TestCase):
    def check_all(self, r, names):
        env, mounts = r.env(), r.mounts()

        # Kubernetes: kubeconfig secret key `config` is ~/.kube/config.
        vol, m = r.volume_at(HOME + "/.kube")
        self.assertEqual(vol["secret"]["secretName"], names["kube"])
        self.assertEqual(vol["secret"]["items"], [{"key": "config", "path": "config"}])
        self.assertTrue(m["readOnly"])
        self.assertNotIn("KUBECONFIG", env)

        # GCP: key file at ~/gcp-cred.json, for ADC and gcloud.
        vol, m = r.volume_at(HOME + "/gcp-cred.json")
        self.assertEqual(vol["secret"]["secretName"], names["gcp"])
        self.assertEqual(vol["secret"]["items"], [{"key": "gcp-cred.json", "path": "gcp-cred.json"}])
        self.assertEqual(m["subPath"], "gcp-cred.json")
        self.assertEqual(env["GOOGLE_APPLICATION_CREDENTIALS"]["value"], HOME + "/gcp-cred.json")
        self.assertEqual(env["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"]["value"], HOME + "/gcp-cred.json")
        self.assertIn("emptyDir", r.volume_at(HOME + "/.config/gcloud")[0])

        # RunPod and Lambda: written by init containers from key api_key.
        for cred, dirname, filename, secret in (
                ("runpod", ".runpod", "config.toml", names["runpod"]),
                ("lambda", ".lambda_cloud", "lambda_keys", names["lambda"])):
            init = r.init_container("create-%s-credentials" % cred)
            self.assertEqual(init["image"], r.container()["image"])
            self.assertEqual(init["securityContext"], r.container()["securityContext"])
            ref = {e["name"]: e for e in init["env"]}["API_KEY"]["valueFrom"]["secretKeyRef"]
            self.assertEqual((ref["name"], ref["key"]), (secret, "api_key"))
            script = init["args"][0]
            self.assertIn("/credentials/" + filename, script)
            self.assertIn("exit 1", script)
            self.assertIn(secret, script)
            self.assertNotIn("sleep", script)
            vol, m = r.volume_at(HOME + "/" + dirname)
            self.assertIn("emptyDir", vol)
            self.assertTrue(m["readOnly"])
            self.assertEqual({x["name"] for x in init["volumeMounts"]}, {m["name"]})

        # Vast: the raw key is the file ~/.config/vastai/vast_api_key.
        vol, m = r.volume_at(HOME + "/.config/vastai")
        self.assertEqual(vol["secret"]["secretName"], names["vast"])
        self.assertEqual(vol["secret"]["items"], [{"key": "api_key", "path": "vast_api_key"}])

        # R2: ~/.cloudflare/r2.credentials and ~/.cloudflare/accountid.
        vol, m = r.volume_at(HOME + "/.cloudflare")
        self.assertEqual(vol["secret"]["secretName"], names["r2"])
        self.assertEqual(vol["secret"]["items"], [{"key": "r2.credentials", "path": "r2.credentials"},
                                                  {"key": "accountid", "path": "accountid"}])

        # Nebius: the secret's files are linked into ~/.nebius.
        vol, m = r.volume_at(HOME + "/.nebius_credentials")
        self.assertEqual(vol["secret"]["secretName"], names["nebius"])
        s = r.script()
        self.assertIn('ln -sf "$f" "%s/.nebius/$(basename "$f")"' % HOME, s)

    def test_default_secret_names(self):
        r = ok("credentials-default.yaml")
        self.check_all(r, {"kube": "kube-credentials", "gcp": "gcp-credentials", "runpod": "runpod-credentials",
                           "lambda": "lambda-credentials", "vast": "vast-credentials", "r2": "r2-credentials",
                           "nebius": "nebius-credentials"})
        # AWS from env, keys aws_access_key_id / aws_secret_access_key, on the main container.
        self.assertEqual(r.env_secret("AWS_ACCESS_KEY_ID"), ("aws-credentials", "aws_access_key_id"))
        self.assertEqual(r.env_secret("AWS_SECRET_ACCESS_KEY"), ("aws-credentials", "aws_secret_access_key"))
        self.assertNotIn(HOME + "/.aws", r.mounts())
        env = r.env()
        self.assertEqual(env["CLOUDSDK_CORE_PROJECT"]["value"], "my-gcp-project")
        self.assertEqual(env["GOOGLE_CLOUD_PROJECT"]["value"], "my-gcp-project")
        self.assertIn("echo 'tenant-e00abc' > %s/.nebius/NEBIUS_TENANT_ID.txt" % HOME, r.script())
        # No gcloud/aws CLI init containers: only the two that wrap keys.
        self.assertEqual([c["name"] for c in r.pod()["initContainers"]],
                         ["create-runpod-credentials", "create-lambda-credentials"])

    def test_existing_secret_names(self):
        r = ok("credentials-existing.yaml")
        self.check_all(r, {"kube": "team-kubeconfig", "gcp": "team-gcp", "runpod": "team-runpod",
                           "lambda": "team-lambda", "vast": "team-vast", "r2": "team-r2",
                           "nebius": "team-nebius"})
        # AWS credentials file mode: the whole secret is ~/.aws; no key env.
        vol, m = r.volume_at(HOME + "/.aws")
        self.assertEqual(vol["secret"]["secretName"], "team-aws")
        self.assertTrue(m["readOnly"])
        self.assertNotIn("AWS_ACCESS_KEY_ID", r.env())
        self.assertNotIn("CLOUDSDK_CORE_PROJECT", r.env())
        # gcpCredentials.image is accepted but runs nothing.
        self.assertNotIn("google/cloud-sdk", r.stdout)

    def test_aws_custom_key_names(self):
        r = ok(BASIC, sets=["awsCredentials.enabled=true", "awsCredentials.accessKeyIdKeyName=id",
                            "awsCredentials.secretAccessKeyKeyName=secret"])
        self.assertEqual(r.env_secret("AWS_ACCESS_KEY_ID"), ("aws-credentials", "id"))
        self.assertEqual(r.env_secret("AWS_SECRET_ACCESS_KEY"), ("aws-credentials", "secret"))

    def test_init_containers_fail_fast(self):
        # Run the rendered init script: no key -> exit 1 with the fix; a key -> the file.
        r = ok("credentials-default.yaml")
        for name, filename, expect in (("create-runpod-credentials", "config.toml", '[default]\napi_key = "k-123"\n'),
                                       ("create-lambda-credentials", "lambda_keys", "api_key = k-123\n")):
            script = r.init_container(name)["args"][0]
            d = tempfile.mkdtemp(dir=WORK)
            script = script.replace("/credentials/", d + "/")
            p = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
            self.assertEqual(p.returncode, 1)
            self.assertIn("kubectl create secret generic", p.stderr)
            self.assertIn("api_key", p.stderr)
            p = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                               env={"PATH": os.environ["PATH"], "API_KEY": "k-123"}, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, filename)) as f:
                self.assertEqual(f.read(), expect)
            self.assertEqual(os.stat(os.path.join(d, filename)).st_mode & 0o077, 0)

    def test_in_cluster_namespace(self):
        r = ok("pod-extras.yaml")
        self.assertEqual(r.env_value("SKYDECK_IN_CLUSTER_NAMESPACE", "deck"), "skydeck-clusters")
        self.assertIs(r.pod("deck")["automountServiceAccountToken"], True)
        role = r.get("Role", "deck-api-role")
        self.assertEqual(role["metadata"]["namespace"], "skydeck-clusters")
        self.assertEqual(r.get("RoleBinding", "deck-api-role-binding")["subjects"][0]["namespace"], NAMESPACE)
        # The namespace must exist: a chart-made one would belong to one release.
        self.assertEqual(r.names("Namespace"), [])


class StorageTest(unittest.TestCase):
    def test_storage_class_and_size(self):
        r = ok("storage.yaml")
        pvc = r.get("PersistentVolumeClaim", "skydeck-state")
        self.assertEqual(pvc["spec"]["storageClassName"], "premium-rwo")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "50Gi")
        self.assertEqual(pvc["metadata"]["annotations"], {"backup.example.com/schedule": "daily"})

    def test_precreated_retain_volume(self):
        r = ok("storage-retain-pv.yaml")
        pvc = r.get("PersistentVolumeClaim", "skydeck-state")["spec"]
        with open(os.path.join(EXAMPLES_DIR, "persistent-volume.yaml")) as f:
            pv = yaml.safe_load(f)
        self.assertEqual(pv["kind"], "PersistentVolume")
        self.assertEqual(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain")
        # The claim binds to that volume: name, class, labels, mode, size.
        self.assertEqual(pvc["volumeName"], pv["metadata"]["name"])
        self.assertEqual(pvc["storageClassName"], pv["spec"]["storageClassName"])
        for k, v in pvc["selector"]["matchLabels"].items():
            self.assertEqual(pv["metadata"]["labels"][k], v)
        self.assertIn(pvc["accessModes"][0], pv["spec"]["accessModes"])
        self.assertEqual(pvc["resources"]["requests"]["storage"], pv["spec"]["capacity"]["storage"])

    def test_storage_disabled(self):
        r = ok(BASIC, sets=["storage.enabled=false"])
        self.assertEqual(r.names("PersistentVolumeClaim"), [])
        vol, m = r.volume_at(HOME + "/.skydeck")
        self.assertEqual(vol, {"name": "state-volume", "emptyDir": {}})
        self.assertNotIn(HOME + "/.ssh", r.mounts())


class DatabaseTest(unittest.TestCase):
    def test_existing_secret(self):
        r = ok("database-secret.yaml")
        self.assertEqual(r.env_secret("SKYDECK_DB_CONNECTION_URI"), ("skydeck-db", "connection_string"))
        self.assertIsNone(r.find("Secret", "skydeck-db-connection"))

    def test_connection_string(self):
        r = ok("database-string.yaml")
        self.assertEqual(r.env_secret("SKYDECK_DB_CONNECTION_URI"), ("skydeck-db-connection", "connection_string"))
        sec = r.get("Secret", "skydeck-db-connection")
        self.assertEqual(sec["stringData"]["connection_string"], "postgresql://skydeck:s3cret@db.internal:5432/skydeck")
        # Never in the pod spec itself.
        self.assertNotIn("s3cret", json.dumps(r.deployment()))

    def test_secrets_never_reach_the_environment_of_pid_1(self):
        # `local` jobs run in this container as the same user: they can read
        # /proc/1/environ. Run the real start scripts with tini and the
        # server replaced by stubs that record their environment.
        r = ok("database-string.yaml", sets=["apiService.enableUserManagement=true"])
        api = r.container()
        outer = api["command"][2]
        inner = api["args"][2]
        # The part of the start script that takes the secrets over.
        takeover = inner[:inner.index("done\n") + len("done\n")]
        d = tempfile.mkdtemp(dir=WORK)
        handoff = os.path.join(d, "handoff")
        os.makedirs(handoff)
        tini = os.path.join(d, "tini")
        with open(tini, "w") as f:
            f.write('#!/bin/sh\nenv > "%s/tini.env"\nstat -c "%%n %%a" "%s"/* > "%s/modes"\n'
                    '[ "$1" = -- ] && shift\nexec "$@"\n' % (d, handoff, d))
        os.chmod(tini, 0o755)
        outer = outer.replace("/usr/bin/tini", tini).replace("/var/skydeck/handoff", handoff)
        server = takeover.replace("/var/skydeck/handoff", handoff) + 'env > "%s/server.env"\n' % d
        uri = "postgresql://skydeck:s3 c'r\"e$t@db:5432/skydeck"
        # The kubelet still gives both from their secrets, to PID 1 only.
        self.assertEqual(r.env_secret("SKYDECK_DB_CONNECTION_URI"), ("skydeck-db-connection", "connection_string"))
        self.assertEqual(r.env_secret("SKYDECK_INITIAL_BASIC_AUTH"), ("skydeck-initial-basic-auth", "auth"))
        env = {"PATH": os.environ["PATH"], "SKYDECK_DB_CONNECTION_URI": uri,
               "SKYDECK_INITIAL_BASIC_AUTH": "admin:$apr1$x$y"}
        # A job's leftovers from before a container restart: neither a
        # variable of its choosing nor a stale value reaches the server.
        for name, value in (("SKYDECK_INSECURE_NO_AUTH", "true"), (".SKYDECK_X", "1")):
            with open(os.path.join(handoff, name), "w") as f:
                f.write(value)
        p = subprocess.run(["/bin/sh", "-c", outer, "skydeck-init", "/bin/sh", "-c", server],
                           env=env, capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(d, "tini.env")) as f:
            tini_env = f.read()
        self.assertNotIn("SKYDECK_DB_CONNECTION_URI", tini_env)
        self.assertNotIn("s3 c", tini_env)
        self.assertNotIn("SKYDECK_INITIAL_BASIC_AUTH", tini_env)
        with open(os.path.join(d, "server.env")) as f:
            server_env = f.read().splitlines()
        self.assertIn("SKYDECK_DB_CONNECTION_URI=" + uri, server_env)
        self.assertIn("SKYDECK_INITIAL_BASIC_AUTH=admin:$apr1$x$y", server_env)
        self.assertFalse([l for l in server_env if l.startswith(("SKYDECK_INSECURE", ".SKYDECK"))])
        self.assertEqual(os.listdir(handoff), [], "the handed-over files are deleted once read")
        with open(os.path.join(d, "modes")) as f:
            modes = sorted(line.split()[1] for line in f.read().splitlines())
        self.assertEqual(modes, ["600", "600"], "only the two secrets, readable by their owner only")

    def test_secret_name_wins(self):
        r = ok("database-string.yaml", sets=["apiService.dbConnectionSecretName=other"])
        self.assertEqual(r.env_secret("SKYDECK_DB_CONNECTION_URI"), ("other", "connection_string"))
        self.assertIsNone(r.find("Secret", "skydeck-db-connection"))

    def test_rolling_update(self):
        r = ok("rolling-update.yaml")
        dep = r.deployment()
        self.assertEqual(dep["spec"]["strategy"],
                         {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(r.container()["readinessProbe"]["successThreshold"], 3)
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/affinity"], "cookie")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/proxy-next-upstream"], "http_502 non_idempotent")
        self.assertEqual(r.get("PersistentVolumeClaim", "skydeck-state")["spec"]["accessModes"], ["ReadWriteMany"])

    def test_rolling_update_without_storage(self):
        r = ok(BASIC, sets=["apiService.upgradeStrategy=RollingUpdate",
                            "apiService.dbConnectionSecretName=db", "storage.enabled=false"])
        self.assertEqual(r.deployment()["spec"]["strategy"]["type"], "RollingUpdate")


class MetricsTest(unittest.TestCase):
    def test_metrics_prometheus_grafana(self):
        r = ok("metrics.yaml")
        api = r.container()
        self.assertIn({"name": "metrics", "containerPort": 9090, "protocol": "TCP"}, api["ports"])
        self.assertTrue(r.script().splitlines()[-1].endswith("--metrics --metrics-port 9090"))
        env = r.env()
        self.assertEqual(env["SKYDECK_METRICS"]["value"], "true")
        self.assertEqual(env["SKYDECK_METRICS_PORT"]["value"], "9090")
        ann = r.deployment()["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann, {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
                               "prometheus.io/port": "9090"})
        svc = r.get("Service", "skydeck-api-service")
        self.assertIn({"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
                      svc["spec"]["ports"])
        self.assertEqual(svc["metadata"]["labels"]["app"], "skydeck-api")
        sm = r.get("ServiceMonitor", "skydeck-api")
        self.assertEqual(sm["spec"]["selector"]["matchLabels"], {"app": "skydeck-api"})
        self.assertEqual(sm["spec"]["endpoints"], [{"port": "metrics", "path": "/metrics",
                                                    "interval": "30s", "scrapeTimeout": "25s"}])
        self.assertEqual(sm["metadata"]["labels"]["release"], "kube-prometheus-stack")
        # Subcharts get their values.
        prom = r.stub_values("prometheus")
        self.assertEqual(prom["server"]["persistentVolume"]["size"], "50Gi")
        self.assertIs(prom["kube-state-metrics"]["enabled"], False)
        graf = r.stub_values("grafana")
        self.assertEqual(graf["grafana.ini"]["auth.proxy"]["header_name"], "X-WEBAUTH-USER")
        # Datasource and dashboard ConfigMaps for Grafana's sidecar.
        ds = r.get("ConfigMap", "skydeck-prometheus-datasource")
        self.assertEqual(ds["metadata"]["labels"]["grafana_datasource"], "1")
        dsy = yaml.safe_load(ds["data"]["prometheus-datasource.yaml"])
        self.assertEqual(dsy["datasources"][0]["url"], "http://skydeck-prometheus-server.skydeck.svc:80")
        self.assertEqual(dsy["datasources"][0]["uid"], "prometheus")
        dash = r.get("ConfigMap", "skydeck-dashboards")
        self.assertEqual(dash["metadata"]["labels"]["grafana_dashboard"], "1")
        with open(os.path.join(CHART, "dashboards", "skydeck-overview.json")) as f:
            self.assertEqual(json.loads(dash["data"]["skydeck-overview.json"]), json.load(f))
        # Grafana behind the same basic auth at /grafana.
        gi = r.get("Ingress", "skydeck-grafana-authed")
        self.assertEqual(gi["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"], "skydeck-basic-auth")
        self.assertIn("$remote_user", gi["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"])
        p = gi["spec"]["rules"][0]["http"]["paths"][0]
        self.assertEqual((p["path"], p["backend"]["service"]["name"]), ("/grafana", "skydeck-grafana"))
        self.assertIn("Metrics: http://skydeck-api-service.skydeck.svc:9090/metrics", r.notes)

    def test_dedicated_scrape_config(self):
        r = ok("metrics.yaml", sets=["prometheus.useDedicatedScrapeConfig=true"])
        ann = r.deployment()["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann, {"skydeck.io/scrape": "true", "skydeck.io/path": "/metrics", "skydeck.io/port": "9090"})
        scrape = yaml.safe_load(r.get("ConfigMap", "stub-prometheus-values")["data"]["extraScrapeConfigs"])
        self.assertEqual(scrape[0]["job_name"], "skydeck-api-server-metrics")
        self.assertEqual(scrape[0]["kubernetes_sd_configs"][0]["namespaces"]["names"], [NAMESPACE])
        self.assertIn("__meta_kubernetes_pod_annotation_skydeck_io_scrape", json.dumps(scrape))
        # Without it the job is not there (the usual kubernetes-pods job scrapes).
        r = ok("metrics.yaml")
        self.assertFalse(yaml.safe_load(r.get("ConfigMap", "stub-prometheus-values")["data"].get("extraScrapeConfigs", "") or "null"))

    def test_custom_port_and_no_servicemonitor(self):
        r = ok(BASIC, sets=["apiService.metrics.enabled=true", "apiService.metrics.port=9100"])
        self.assertEqual(r.env_value("SKYDECK_METRICS_PORT"), "9100")
        self.assertTrue(r.script().endswith("--metrics --metrics-port 9100\n"))
        self.assertEqual(r.names("ServiceMonitor"), [])

    def test_grafana_without_ingress_auth_has_no_ingress(self):
        r = ok(sets=["grafana.enabled=true", "apiService.enableUserManagement=true"])
        self.assertIsNone(r.find("Ingress", "skydeck-grafana-authed"))
        self.assertIn("kubectl port-forward -n skydeck svc/skydeck-grafana 3000:80", r.notes)


class DashboardTest(unittest.TestCase):
    LABELS = {
        "skydeck_http_requests_total": {"method", "route", "status"},
        "skydeck_http_request_duration_seconds": {"method", "route"},
        "skydeck_requests_total": {"name", "status"},
        "skydeck_request_duration_seconds": {"name"},
        "skydeck_requests_queued": {"pool"},
        "skydeck_requests_running": {"pool"},
        "skydeck_clusters": {"status"},
        "skydeck_jobs": {"status"},
        "skydeck_db_query_duration_seconds": {"op"},
        "process_resident_memory_bytes": set(),
        "process_cpu_seconds_total": set(),
        "process_open_fds": set(),
        "process_start_time_seconds": set(),
    }
    HISTOGRAMS = {"skydeck_http_request_duration_seconds", "skydeck_request_duration_seconds",
                  "skydeck_db_query_duration_seconds"}
    TARGET_LABELS = {"instance", "job", "pod", "namespace"}

    def test_dashboard_uses_exported_metrics(self):
        with open(os.path.join(CHART, "dashboards", "skydeck-overview.json")) as f:
            dash = json.load(f)
        self.assertEqual(dash["uid"], "skydeck-overview")
        exprs = []
        for p in dash["panels"]:
            if p["type"] == "row":
                continue
            self.assertTrue(p.get("targets"), p["title"])
            self.assertEqual(p["datasource"]["type"], "prometheus")
            exprs += [t["expr"] for t in p["targets"]]
        exprs.append(dash["templating"]["list"][1]["definition"])
        seen = set()
        for e in exprs:
            metrics = set()
            for m in re.findall(r"\b((?:skydeck|process)_[a-z_]+)", e):
                base = m
                for suffix in ("_bucket", "_count", "_sum"):
                    if m.endswith(suffix) and m[: -len(suffix)] in self.HISTOGRAMS:
                        base = m[: -len(suffix)]
                self.assertIn(base, self.LABELS, "unknown metric %s in %s" % (m, e))
                if base != m:
                    self.assertIn(base, self.HISTOGRAMS)
                metrics.add(base)
            self.assertTrue(metrics, e)
            seen |= metrics
            allowed = set().union(*(self.LABELS[m] for m in metrics)) | self.TARGET_LABELS
            if any(m in self.HISTOGRAMS for m in metrics):
                allowed.add("le")
            for group in re.findall(r"\bby \(([^)]*)\)", e):
                for label in [x.strip() for x in group.split(",")]:
                    self.assertIn(label, allowed, "label %s in %s" % (label, e))
            for label in re.findall(r'[{,]\s*([a-z_]+)\s*=~?"', e):
                self.assertIn(label, allowed, "label %s in %s" % (label, e))
        self.assertEqual(seen, set(self.LABELS), "metrics without a panel")


RBAC_RESOURCES = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


class RbacTest(unittest.TestCase):
    def test_no_scenario_lets_the_server_write_cluster_rbac_or_escalate(self):
        for name, r in [("defaults", ok())] + [(f, ok(f, release=release_for((f,)))) for f in scenario_files()]:
            for role in r.all("Role") + r.all("ClusterRole"):
                for rule in role["rules"]:
                    with self.subTest(scenario=name, role=role["metadata"]["name"], rule=rule):
                        rbac = set(rule["resources"]) & RBAC_RESOURCES
                        self.assertFalse(rbac & {"clusterroles", "clusterrolebindings"})
                        if rbac:
                            self.assertFalse({"*", "escalate", "bind", "impersonate"} & set(rule["verbs"]))

    def test_kubernetes_backend_rules(self):
        r = ok("rbac-kubernetes.yaml")
        self.assertIs(r.pod()["automountServiceAccountToken"], True)
        role = r.get("Role", "skydeck-api-role")
        self.assertEqual(role["metadata"]["namespace"], NAMESPACE)
        res = {tuple(rule["resources"]): rule["verbs"] for rule in role["rules"]}
        self.assertEqual(res[("pods", "pods/status", "pods/exec", "pods/portforward")], ["*"])
        manage = ["get", "list", "watch", "create", "update", "patch", "delete"]
        self.assertEqual(res[("roles", "rolebindings")], manage)
        self.assertEqual(res[("serviceaccounts",)], manage)
        self.assertNotIn(("secrets",), res)
        cr = r.get("ClusterRole", "skydeck-skydeck-api-role")
        self.assertEqual([rule["resources"] for rule in cr["rules"]], [["nodes"], ["runtimeclasses"]])
        crb = r.get("ClusterRoleBinding", "skydeck-skydeck-api-role-binding")
        self.assertEqual(crb["roleRef"]["name"], "skydeck-skydeck-api-role")
        self.assertEqual(crb["subjects"], [{"kind": "ServiceAccount", "name": "skydeck-api-sa", "namespace": NAMESPACE}])
        # System components: the release's own namespace, no shared one.
        sr = r.get("Role", "skydeck-system-role")
        self.assertEqual(sr["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(sr["rules"], [{"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": manage}])
        self.assertEqual(r.names("Namespace"), [])
        self.assertFalse([d for d in r.docs if d["metadata"].get("namespace", NAMESPACE) != NAMESPACE])

    def test_existing_service_account(self):
        r = ok("rbac-existing-sa.yaml")
        for kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Namespace"):
            self.assertEqual(r.names(kind), [], kind)
        self.assertEqual(r.pod()["serviceAccountName"], "skydeck-api")
        # The admin's account is used in this cluster, so its token is mounted.
        self.assertIs(r.pod()["automountServiceAccountToken"], True)
        cfg = yaml.safe_load(r.get("ConfigMap", "skydeck-config")["data"]["config.yaml"])
        self.assertEqual(cfg["allowed_clouds"], ["kubernetes"])

    def test_custom_rules_and_annotations(self):
        r = ok("pod-extras.yaml")
        self.assertEqual(r.get("ServiceAccount", "deck-api-sa")["metadata"]["annotations"],
                         {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/skydeck"})
        r = ok(BASIC, set_json=['rbac.clusterRules=[{"apiGroups":[""],"resources":["nodes"],"verbs":["list"]}]',
                                'rbac.namespaceRules=[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]'])
        cr = r.get("ClusterRole", "skydeck-skydeck-api-role")["rules"]
        self.assertEqual(cr, [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}])
        self.assertEqual(r.get("Role", "skydeck-api-role")["rules"],
                         [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])


class TwoReleasesTest(unittest.TestCase):
    """A second release, in the same namespace or another, renders nothing
    that the first release owns already (helm refuses to install over an
    object of another release), whatever the RBAC values."""

    def objects(self, r):
        return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
                for d in r.docs if not d["metadata"]["name"].startswith("stub-")}

    def test_no_object_is_shared(self):
        # The namespace of clusters may be shared by both releases.
        shared = ("kubernetesCredentials.inclusterNamespace=clusters",)
        for vfiles, sets in (((), ()), (("rbac-kubernetes.yaml",), ()), (("rbac-kubernetes.yaml",), shared)):
            a = ok(*vfiles, sets=sets, release="skydeck-a")
            for ns in (NAMESPACE, "other"):
                b = ok(*vfiles, sets=sets, release="skydeck-b", extra=("-n", ns))
                with self.subTest(values=vfiles, namespace=ns):
                    self.assertEqual(self.objects(a) & self.objects(b), set())
                    self.assertEqual(a.names("Namespace") + b.names("Namespace"), [])
            # One release name in two namespaces: the cluster-wide objects differ.
            same = ok(*vfiles, sets=sets, release="skydeck-a", extra=("-n", "other"))
            self.assertEqual({o for o in self.objects(a) & self.objects(same) if o[1] is None}, set())


def kubectl(*args):
    return subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True)


class ApiServerTest(unittest.TestCase):
    """The chart installed into a real kube-apiserver (RBAC on, nothing
    runs): what the API server's ServiceAccount may do is what the API
    server answers, not what the manifests seem to say."""

    @classmethod
    def setUpClass(cls):
        if not KUBECONFIG:
            if os.environ.get("CI"):
                raise AssertionError("CI must run the API server tests: set SKYDECK_KUBECONFIG "
                                     "(scripts/chart-test.sh does)")
            raise unittest.SkipTest("SKYDECK_KUBECONFIG unset (scripts/chart-test.sh sets it)")
        # Both helm versions run against one API server: namespaces of their own.
        cls.prefix = "t%s" % os.urandom(3).hex()

    def namespace(self, name):
        ns = "%s-%s" % (self.prefix, name)
        p = kubectl("create", "namespace", ns)
        self.assertEqual(p.returncode, 0, p.stderr)
        return ns

    def install(self, release, ns, *args):
        p = helm("install", release, CHART_COPY, "-n", ns, "--kubeconfig", KUBECONFIG,
                 "--set", "ingress-nginx.enabled=false", *args)
        self.assertEqual(p.returncode, 0, "helm install %s: %s" % (release, p.stderr))

    def can_i(self, sa, verb, resource, ns=None, subresource=None):
        args = ["auth", "can-i", verb, resource, "--as", sa]
        args += ["-n", ns] if ns else ["--all-namespaces"]
        if subresource:
            args += ["--subresource", subresource]
        p = kubectl(*args)
        answer = p.stdout.strip()
        self.assertIn(answer, ("yes", "no"), p.stderr)
        return answer == "yes"

    def assertMayNot(self, sa, checks):
        for check in checks:
            with self.subTest(sa=sa, may_not=check):
                self.assertFalse(self.can_i(sa, *check))

    def assertMay(self, sa, checks):
        for check in checks:
            with self.subTest(sa=sa, may=check):
                self.assertTrue(self.can_i(sa, *check))

    # What no value of the chart ever grants.
    NEVER = [
        ("create", "clusterrolebindings"), ("create", "clusterroles"),
        ("escalate", "clusterroles"), ("bind", "clusterroles"),
        ("impersonate", "users"), ("impersonate", "serviceaccounts"),
    ]

    def test_defaults_grant_exactly_the_backends_minimum(self):
        ns = self.namespace("defaults")
        other = self.namespace("defaults-other")
        self.install("deck", ns)
        sa = "system:serviceaccount:%s:deck-api-sa" % ns
        p = kubectl("get", "serviceaccount", "deck-api-sa", "-n", ns,
                    "-o", "jsonpath={.automountServiceAccountToken}")
        self.assertEqual(p.stdout, "true", p.stderr)
        # Every call of the Kubernetes backend (the reference's REST calls).
        self.assertMay(sa, [
            ("create", "pods", ns), ("get", "pods", ns), ("list", "pods", ns), ("watch", "pods", ns),
            ("patch", "pods", ns), ("delete", "pods", ns), ("get", "pods", ns, "status"),
            ("create", "pods", ns, "exec"), ("get", "pods", ns, "exec"),
            ("create", "pods", ns, "portforward"), ("get", "pods", ns, "portforward"),
            ("create", "services", ns), ("get", "services", ns), ("list", "services", ns),
            ("patch", "services", ns), ("delete", "services", ns), ("deletecollection", "services", ns),
            ("get", "secrets", ns), ("create", "secrets", ns),
            ("get", "events", ns), ("list", "events", ns), ("watch", "events", ns),
            ("get", "serviceaccounts", ns), ("create", "serviceaccounts", ns),
            ("get", "nodes"), ("list", "nodes"), ("watch", "nodes"),
            ("list", "runtimeclasses.node.k8s.io"), ("list", "storageclasses.storage.k8s.io"),
        ])
        # Nothing beyond it: no writes cluster-wide, nothing in another
        # namespace, no RBAC, no tokens, no workloads beyond pods.
        self.assertMayNot(sa, self.NEVER + [
            ("delete", "nodes"), ("patch", "nodes"), ("create", "nodes"),
            ("delete", "runtimeclasses.node.k8s.io"), ("create", "storageclasses.storage.k8s.io"),
            ("get", "secrets", other), ("list", "secrets"), ("create", "pods", other),
            ("list", "pods", other), ("list", "pods"), ("create", "pods", other, "exec"),
            # Logs come through exec, so the backend never reads pods/log.
            ("get", "pods", ns, "log"), ("get", "services", other), ("list", "events", other),
            ("create", "roles", ns), ("create", "rolebindings", ns),
            ("delete", "serviceaccounts", ns), ("patch", "serviceaccounts", ns),
            ("create", "serviceaccounts", ns, "token"), ("create", "serviceaccounts", other),
            ("create", "events", ns), ("delete", "events", ns),
            ("get", "configmaps", ns), ("create", "deployments.apps", ns),
            ("create", "daemonsets.apps", ns), ("create", "persistentvolumeclaims", ns),
            ("list", "namespaces"), ("create", "namespaces"),
            ("create", "ingresses.networking.k8s.io", ns),
        ])

    def test_without_the_api_server_cluster_nothing_is_granted(self):
        ns = self.namespace("no-incluster")
        self.install("deck", ns, "--set", "kubernetesCredentials.useApiServerCluster=false")
        sa = "system:serviceaccount:%s:deck-api-sa" % ns
        p = kubectl("get", "serviceaccount", "deck-api-sa", "-n", ns,
                    "-o", "jsonpath={.automountServiceAccountToken}")
        self.assertEqual(p.stdout, "false", p.stderr)
        self.assertMayNot(sa, self.NEVER + [
            ("create", "roles", ns), ("create", "rolebindings", ns),
            ("get", "secrets", ns), ("list", "secrets"), ("get", "configmaps", ns),
            ("list", "pods", ns), ("create", "pods", ns), ("create", "pods", ns, "exec"),
            ("get", "pods", ns, "log"), ("create", "services", ns), ("list", "events", ns),
            ("create", "serviceaccounts", ns), ("create", "serviceaccounts", ns, "token"),
            ("get", "nodes"), ("list", "runtimeclasses.node.k8s.io"),
            ("list", "namespaces"), ("create", "daemonsets.apps", ns),
        ])

    def test_kubernetes_backend_rules_hold_at_the_api_server(self):
        ns = self.namespace("backend")
        other = self.namespace("other")
        self.install("deck", ns, "-f", os.path.join(VALUES_DIR, "rbac-kubernetes.yaml"))
        sa = "system:serviceaccount:%s:deck-api-sa" % ns
        self.assertMay(sa, [
            ("list", "pods", ns), ("create", "pods", ns, "exec"), ("get", "nodes"),
            ("create", "roles", ns), ("create", "serviceaccounts", ns),
            ("create", "daemonsets.apps", ns),
        ])
        self.assertMayNot(sa, [
            ("create", "clusterrolebindings"), ("create", "clusterroles"),
            ("escalate", "roles", ns), ("bind", "roles", ns), ("bind", "clusterroles"),
            ("get", "secrets", ns), ("list", "secrets"), ("create", "pods", other),
            ("create", "roles", other), ("impersonate", "serviceaccounts", ns),
        ])
        # Creating roles without `escalate`: only what the account holds.
        p = kubectl("create", "role", "grab-secrets", "--verb=get", "--resource=secrets",
                    "-n", ns, "--as", sa)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("forbidden", p.stderr)
        p = kubectl("create", "rolebinding", "grab-admin", "--clusterrole=cluster-admin",
                    "--serviceaccount=%s:deck-api-sa" % ns, "-n", ns, "--as", sa)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("forbidden", p.stderr)
        p = kubectl("create", "role", "read-pods", "--verb=get", "--resource=pods", "-n", ns, "--as", sa)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_ssh_node_pools_and_keys_are_accepted_by_the_api_server(self):
        ns = self.namespace("ssh-pools")
        p = kubectl("create", "secret", "generic", "skydeck-ssh-keys", "-n", ns,
                    "--from-literal=id_ed25519=not-a-real-key")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = kubectl("create", "secret", "generic", "kube-credentials", "-n", ns,
                    "--from-literal=config={}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.install("deck", ns, "-f", os.path.join(VALUES_DIR, "ssh-node-pools.yaml"))
        p = kubectl("get", "secret", "deck-ssh-node-pools", "-n", ns, "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        data = json.loads(p.stdout)["data"]
        pools = yaml.safe_load(base64.b64decode(data["ssh_node_pools.yaml"]))
        self.assertEqual(pools["gpu-boxes"]["hosts"], ["10.0.0.11", "10.0.0.12"])
        p = kubectl("get", "deployment", "deck-api-server", "-n", ns, "-o", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        spec = json.loads(p.stdout)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(volumes["ssh-keys"]["secret"]["defaultMode"], 0o600)
        self.assertEqual(volumes["ssh-keys"]["secret"]["secretName"], "skydeck-ssh-keys")
        self.assertEqual(volumes["ssh-node-pools"]["secret"]["secretName"], "deck-ssh-node-pools")
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        self.assertEqual(mounts["/var/skydeck/ssh_keys"]["name"], "ssh-keys")
        self.assertEqual(mounts["/var/skydeck/ssh_node_pool"]["name"], "ssh-node-pools")

    def test_a_clone_installs_air_gapped_with_every_subchart_off(self):
        ns = self.namespace("air-gapped")
        p = helm("install", "deck", committed_chart_copy(), "-n", ns, "--kubeconfig", KUBECONFIG,
                 *[a for s in ALL_SUBCHARTS_OFF for a in ("--set", s)])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = kubectl("get", "deployment", "deck-api-server", "-n", ns)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_a_second_release_installs_beside_the_first(self):
        # Each with the RBAC of the coming Kubernetes backend, which used
        # to bring a namespace that one release owned.
        rbac = ("-f", os.path.join(VALUES_DIR, "rbac-kubernetes.yaml"))
        ns = self.namespace("two")
        other = self.namespace("two-other")
        self.install("first", ns, *rbac)
        self.install("second", ns, *rbac)
        self.install("third", other, *rbac)
        self.install("fourth", ns, "--dry-run", *rbac)


class PodTest(unittest.TestCase):
    def test_pre_deploy_hook_and_config(self):
        r = ok("pre-deploy-hook.yaml")
        lines = r.script().splitlines()
        # The hook runs first after the secrets are taken over.
        lines = lines[:1] + lines[lines.index("done") + 1:]
        self.assertEqual(lines[0:4], ["set -e", 'echo "fetching the admin policy rules"',
                                      'mkdir -p "$HOME/policy"', "printf 'max_cpus: 16\\n' > \"$HOME/policy/rules.yaml\""])
        cfg = yaml.safe_load(r.get("ConfigMap", "skydeck-config")["data"]["config.yaml"])
        self.assertEqual(cfg["admin_policy"]["max_cpus"], 16)
        self.assertIs(cfg["workspaces"]["team-a"]["private"], True)

    def test_start_script_seeds_config_only_once(self):
        # Run the rendered script's config part for real.
        r = ok("pre-deploy-hook.yaml")
        s = r.script()
        part = s[s.index('mkdir -p "$SKYDECK_HOME"'):s.index("exec skydeck")]
        home = tempfile.mkdtemp(dir=WORK)
        seed = os.path.join(home, "seed")
        os.makedirs(seed)
        with open(os.path.join(seed, "config.yaml"), "w") as f:
            f.write(r.get("ConfigMap", "skydeck-config")["data"]["config.yaml"])
        part = part.replace("/var/skydeck/config/", seed + "/")
        env = {"PATH": os.environ["PATH"], "SKYDECK_HOME": os.path.join(home, ".skydeck")}
        state = os.path.join(home, ".skydeck", "config.yaml")
        for existing, expect in ((None, "max_cpus: 16"), ("", "max_cpus: 16"), ("workspaces: {}\n", "workspaces: {}")):
            if existing is not None:
                os.makedirs(os.path.dirname(state), exist_ok=True)
                with open(state, "w") as f:
                    f.write(existing)
            elif os.path.exists(state):
                os.remove(state)
            p = subprocess.run(["sh", "-c", "set -e\n" + part], env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(state) as f:
                self.assertIn(expect, f.read(), existing)

    def test_ssh_node_pools_and_keys(self):
        r = ok("ssh-node-pools.yaml")
        sec = r.get("Secret", "skydeck-ssh-node-pools")
        pools = yaml.safe_load(sec["stringData"]["ssh_node_pools.yaml"])
        self.assertEqual(pools["gpu-boxes"]["hosts"], ["10.0.0.11", "10.0.0.12"])
        vol, m = r.volume_at("/var/skydeck/ssh_node_pool")
        self.assertEqual(vol["secret"]["secretName"], "skydeck-ssh-node-pools")
        s = r.script()
        self.assertIn("ln -sf /var/skydeck/ssh_node_pool/ssh_node_pools.yaml %s/.sky/ssh_node_pools.yaml" % HOME, s)
        self.assertIn('ln -sf /var/skydeck/ssh_node_pool/ssh_node_pools.yaml "$SKYDECK_HOME/ssh_node_pools.yaml"', s)
        # Keys: mode 0600, linked into ~/.ssh (which is on the state volume).
        vol, m = r.volume_at("/var/skydeck/ssh_keys")
        self.assertEqual(vol["secret"], {"secretName": "skydeck-ssh-keys", "defaultMode": 0o600})
        self.assertIn('ln -sf "$f" "%s/.ssh/$(basename "$f")"' % HOME, s)
        self.assertEqual(r.volume_at(HOME + "/.ssh")[1]["subPath"], ".ssh")
        # With node pools, ~/.kube is on the state volume and the kubeconfig
        # secret is merged in through KUBECONFIG.
        self.assertEqual(r.volume_at(HOME + "/.kube")[1]["subPath"], ".kube")
        vol, m = r.volume_at("/var/skydeck/kubeconfig")
        self.assertEqual(vol["secret"]["secretName"], "kube-credentials")
        self.assertEqual(r.env_value("KUBECONFIG"), HOME + "/.kube/config:/var/skydeck/kubeconfig/config")

    def test_ssh_keys_are_readable_by_the_server_user_only(self):
        r = ok("ssh-node-pools.yaml")
        # The pod runs as uid/gid 1000 with fsGroup 1000: the kubelet
        # writes the secret's files root-owned, group 1000, mode 0600 plus
        # group read (0640). ssh accepts a root-owned key that its user
        # reads through the group; no other user of the pod can read it.
        pod = r.pod()
        for key, want in (("runAsUser", 1000), ("runAsGroup", 1000), ("fsGroup", 1000), ("runAsNonRoot", True)):
            self.assertEqual(pod["securityContext"][key], want, key)
        _, m = r.volume_at("/var/skydeck/ssh_keys")
        self.assertTrue(m.get("readOnly"), m)
        _, m = r.volume_at("/var/skydeck/ssh_node_pool")
        self.assertTrue(m.get("readOnly"), m)
        # ~/.ssh is made under the umask PID 1 set (077): a 0700 directory.
        self.assertIn("umask 077", r.container()["command"][2])
        s = r.script()
        self.assertLess(s.index("mkdir -p %s/.ssh" % HOME), s.index('ln -sf "$f" "%s/.ssh/' % HOME))
        # Only the keys' secret is given a mode; the pools' file is not a key.
        self.assertNotIn("defaultMode", r.volumes()["ssh-node-pools"]["secret"])

    def test_ssh_node_pools_and_keys_unset_render_nothing(self):
        for r in (ok(), ok(set_json=["apiService.sshNodePools=null", "apiService.sshKeySecret=null"]),
                  ok(sets=["apiService.sshKeySecret=skydeck-ssh-keys"])):
            s = r.script()
            self.assertNotIn("/var/skydeck/ssh_node_pool", r.mounts())
            self.assertNotIn("ssh-node-pools", r.volumes())
            self.assertIsNone(r.find("Secret", "skydeck-ssh-node-pools"))
            self.assertNotIn("ssh_node_pools.yaml", s)
            self.assertNotIn(HOME + "/.kube", r.mounts())
            self.assertNotIn("KUBECONFIG", r.env())
        r = ok()
        self.assertNotIn("/var/skydeck/ssh_keys", r.mounts())
        self.assertNotIn("ssh-keys", r.volumes())
        self.assertNotIn("/var/skydeck/ssh_keys", r.script())
        # Keys without pools: mounted and linked on their own.
        r = ok(sets=["apiService.sshKeySecret=skydeck-ssh-keys"])
        vol, _ = r.volume_at("/var/skydeck/ssh_keys")
        self.assertEqual(vol["secret"], {"secretName": "skydeck-ssh-keys", "defaultMode": 0o600})
        self.assertIn('ln -sf "$f" "%s/.ssh/$(basename "$f")"' % HOME, r.script())

    def test_pod_extras(self):
        r = ok("pod-extras.yaml")
        pod, api = r.pod("deck"), r.container("deck")
        self.assertEqual(api["image"], "registry.internal:5000/skydeck/skydeck:0.1.0-rc1")
        self.assertEqual(api["imagePullPolicy"], "Always")
        self.assertEqual(pod["imagePullSecrets"], [{"name": "regcred"}])
        names = [e["name"] for e in api["env"]]
        self.assertEqual(names[:3], ["HTTPS_PROXY", "RUST_LOG", "SKYDECK_HOME"])
        self.assertEqual(pod["terminationGracePeriodSeconds"], 300)
        self.assertEqual(r.env_value("SKYDECK_GRACE_PERIOD_SECONDS", "deck"), "300")
        self.assertEqual(api["resources"], {"requests": {"cpu": "2", "memory": "4Gi"},
                                            "limits": {"cpu": "4", "memory": "16Gi"}})
        self.assertEqual(r.mounts("deck")["/etc/ssl/certs/corp-ca.pem"]["subPath"], "ca.pem")
        self.assertEqual(r.volumes("deck")["corp-ca"]["configMap"]["name"], "corp-ca-bundle")
        self.assertEqual([c["name"] for c in pod["containers"]], ["skydeck-api", "log-shipper"])
        self.assertEqual([c["name"] for c in pod["initContainers"]], ["wait-for-db"])
        self.assertEqual(pod["nodeSelector"], {"node-role.example.com/control": "true"})
        self.assertEqual(pod["tolerations"][0]["key"], "dedicated")
        self.assertIn("nodeAffinity", pod["affinity"])
        self.assertEqual(pod["runtimeClassName"], "gvisor")
        # podSecurityContext merges over the defaults.
        self.assertEqual(pod["securityContext"]["fsGroup"], 2000)
        self.assertEqual(pod["securityContext"]["runAsUser"], 1000)
        ann = r.deployment("deck")["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["example.com/owner"], "platform-team")
        # fullnameOverride names everything.
        r.get("Service", "deck-api-service")
        r.get("Ingress", "deck-ingress")
        r.get("PersistentVolumeClaim", "deck-state")
        self.assertEqual(r.get("Ingress", "deck-ingress")["spec"]["rules"][0]["http"]["paths"][0]
                         ["backend"]["service"]["name"], "deck-api-service")

    def test_image_registry_rewrite(self):
        for image, expect in (("skydeck/skydeck:1", "mirror.io/skydeck/skydeck:1"),
                              ("ghcr.io/org/skydeck:1", "mirror.io/org/skydeck:1"),
                              ("localhost/skydeck:1", "mirror.io/skydeck:1"),
                              ("skydeck:1", "mirror.io/skydeck:1")):
            with self.subTest(image=image):
                r = ok(BASIC, sets=["global.imageRegistry=mirror.io", "apiService.image=" + image])
                self.assertEqual(r.container()["image"], expect)

    def test_global_extra_envs_reach_init_containers(self):
        r = ok("credentials-default.yaml", set_json=['global.extraEnvs=[{"name":"HTTPS_PROXY","value":"http://p:3128"}]'])
        init = r.init_container("create-runpod-credentials")
        self.assertEqual(init["env"][0], {"name": "HTTPS_PROXY", "value": "http://p:3128"})


class ProxyAuthTest(unittest.TestCase):
    def test_ingress_oauth2_proxy(self):
        r = ok("oauth2-proxy.yaml")
        env = r.env()
        self.assertEqual(env["SKYDECK_EXTERNAL_PROXY_AUTH"]["value"], "true")
        self.assertEqual(env["SKYDECK_AUTH_PROXY_HEADER"]["value"], "X-Auth-Request-Email")
        self.assertEqual(env["SKYDECK_TRUSTED_PROXIES"]["value"], "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fd00::/8")
        self.assertEqual(env["SKYDECK_ENABLE_SERVICE_ACCOUNTS"]["value"], "true")
        # enableUserManagement is ignored while oauth2-proxy is on.
        self.assertNotIn("SKYDECK_ENABLE_BASIC_AUTH", env)
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-url"], "https://$host/oauth2/auth")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-signin"],
                         "https://$host/oauth2/start?rd=$escaped_request_uri")
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-response-headers"], "X-Auth-Request-Email")
        self.assertIn('"^Bearer sky_.+"', ann["nginx.ingress.kubernetes.io/auth-snippet"])
        self.assertNotIn("nginx.ingress.kubernetes.io/auth-type", ann)
        dep = r.get("Deployment", "skydeck-oauth2-proxy")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["image"], "quay.io/oauth2-proxy/oauth2-proxy:v7.9.0")
        self.assertIn("--oidc-issuer-url=https://example.okta.com", c["args"])
        self.assertIn("--cookie-expire=168h", c["args"])
        self.assertNotIn("--cookie-secure=false", c["args"])
        cenv = {e["name"]: e for e in c["env"]}
        self.assertEqual(cenv["OAUTH2_PROXY_CLIENT_ID"]["value"], "skydeck-client")
        self.assertEqual(cenv["REDIS_URL"]["value"], "redis://skydeck-oauth2-proxy-redis:6379/0")
        ref = cenv["OAUTH2_PROXY_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"]
        import base64
        cookie = base64.b64decode(r.get("Secret", ref["name"])["data"][ref["key"]])
        self.assertEqual(len(cookie), 32)
        r.get("Service", "skydeck-oauth2-proxy")
        oi = r.get("Ingress", "skydeck-oauth2-proxy")
        self.assertEqual(oi["spec"]["rules"][0]["host"], "skydeck.example.com")
        self.assertEqual(oi["spec"]["rules"][0]["http"]["paths"][0]["path"], "/oauth2")
        r.get("Deployment", "skydeck-oauth2-proxy-redis")
        r.get("Service", "skydeck-oauth2-proxy-redis")
        self.assertIn("ENDPOINT=http://skydeck.example.com", r.notes)

    def test_grafana_behind_oauth2_proxy(self):
        r = ok("oauth2-proxy.yaml", sets=["grafana.enabled=true"])
        gi = r.get("Ingress", "skydeck-grafana-authed")
        ann = gi["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-url"], "https://$host/oauth2/auth")
        # The user comes from oauth2-proxy's answer, never from the client's headers.
        snippet = ann["nginx.ingress.kubernetes.io/configuration-snippet"]
        self.assertIn("auth_request_set $skydeck_grafana_user $upstream_http_x_auth_request_email;", snippet)
        self.assertNotIn("$http_", snippet)
        self.assertEqual(gi["spec"]["rules"][0]["host"], "skydeck.example.com")

    def test_auth_oauth_keys(self):
        r = ok("auth-oauth.yaml")
        self.assertEqual(r.env_value("SKYDECK_EXTERNAL_PROXY_AUTH"), "true")
        c = r.get("Deployment", "skydeck-oauth2-proxy")["spec"]["template"]["spec"]["containers"][0]
        cenv = {e["name"]: e for e in c["env"]}
        self.assertEqual(cenv["OAUTH2_PROXY_CLIENT_ID"]["valueFrom"]["secretKeyRef"], {"name": "skydeck-oidc", "key": "client-id"})
        self.assertEqual(cenv["OAUTH2_PROXY_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"], {"name": "skydeck-oidc", "key": "client-secret"})
        self.assertEqual(cenv["REDIS_URL"]["value"], "redis://redis.internal:6379/2")
        self.assertIn("--email-domain=example.com", c["args"])
        self.assertIn("--cookie-secure=false", c["args"])
        self.assertIsNone(r.find("Deployment", "skydeck-oauth2-proxy-redis"))
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-url"], "http://$host/oauth2/auth")

    def test_redis_secret_and_cookie_store(self):
        r = ok("auth-oauth.yaml", sets=["auth.oauth.redis-url=null", "auth.oauth.redis-secret=redis-conn"])
        c = r.get("Deployment", "skydeck-oauth2-proxy")["spec"]["template"]["spec"]["containers"][0]
        cenv = {e["name"]: e for e in c["env"]}
        self.assertEqual(cenv["REDIS_URL"]["valueFrom"]["secretKeyRef"], {"name": "redis-conn", "key": "redis_url"})
        r = ok("auth-oauth.yaml", sets=["auth.oauth.redis-url=null", "auth.oauth.session-store-type=cookie"])
        c = r.get("Deployment", "skydeck-oauth2-proxy")["spec"]["template"]["spec"]["containers"][0]
        self.assertNotIn("REDIS_URL", {e["name"] for e in c["env"]})
        self.assertIn("--session-store-type=cookie", c["args"])
        self.assertIsNone(r.find("Deployment", "skydeck-oauth2-proxy-redis"))

    def test_external_proxy(self):
        r = ok("external-proxy.yaml")
        env = r.env()
        self.assertEqual(env["SKYDECK_EXTERNAL_PROXY_AUTH"]["value"], "true")
        self.assertEqual(env["SKYDECK_AUTH_PROXY_HEADER"]["value"], "X-Forwarded-User")
        self.assertEqual(env["SKYDECK_TRUSTED_PROXIES"]["value"], "10.0.0.0/16")
        self.assertIsNone(r.find("Deployment", "skydeck-oauth2-proxy"))
        ing = r.get("Ingress", "skydeck-ingress")
        self.assertEqual(ing["spec"]["ingressClassName"], "alb")
        self.assertEqual(ing["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"], "internal")
        self.assertIn("kubectl get ingress skydeck-ingress -n skydeck", r.notes)

    def test_auth_user_header_name(self):
        r = ok("oauth2-proxy.yaml", sets=["apiService.authUserHeaderName=X-Auth-Request-User"])
        self.assertEqual(r.env_value("SKYDECK_AUTH_PROXY_HEADER"), "X-Auth-Request-User")
        ann = r.get("Ingress", "skydeck-ingress")["metadata"]["annotations"]
        self.assertEqual(ann["nginx.ingress.kubernetes.io/auth-response-headers"], "X-Auth-Request-User")


# --------------------------------------------------------------------------
# Render-time failures.
# --------------------------------------------------------------------------


class FailuresTest(unittest.TestCase):
    CASES = [
        ("RollingUpdate without a database",
         dict(sets=["apiService.upgradeStrategy=RollingUpdate"]),
         "apiService.upgradeStrategy=RollingUpdate needs an external database: set apiService.dbConnectionSecretName"),
        ("RollingUpdate with RWO storage",
         dict(sets=["apiService.upgradeStrategy=RollingUpdate", "apiService.dbConnectionSecretName=db"]),
         "cannot use storage with accessMode ReadWriteOnce"),
        ("replicas without a database",
         dict(sets=["apiService.replicas=2"]),
         "apiService.replicas > 1 needs an external database"),
        ("replicas with RWO storage",
         dict(sets=["apiService.replicas=2", "apiService.dbConnectionString=postgresql://x"]),
         "apiService.replicas > 1 needs storage.accessMode=ReadWriteMany"),
        ("config with a database",
         dict(sets=["apiService.dbConnectionSecretName=db", "apiService.config=allowed_clouds: [aws]"]),
         "apiService.config must be null when an external database is configured"),
        ("rbac.rules",
         dict(set_json=['rbac.rules=[{"apiGroups":[""],"resources":["pods"],"verbs":["*"]}]']),
         "rbac.rules is no longer supported: move namespaced rules to rbac.namespaceRules"),
        ("auth.oauth with ingress basic auth",
         dict(sets=["auth.oauth.enabled=true", "auth.oauth.oidc-issuer-url=https://i", "auth.oauth.client-id=a",
                    "auth.oauth.client-secret=b"], files=[BASIC]),
         "auth.oauth.enabled cannot be used together with ingress basic auth"),
        ("auth.oauth with ingress oauth2-proxy",
         dict(sets=["auth.oauth.enabled=true", "ingress.oauth2-proxy.enabled=true"]),
         "auth.oauth.enabled and ingress.oauth2-proxy.enabled both deploy oauth2-proxy"),
        ("externalProxy with auth.oauth",
         dict(sets=["auth.externalProxy.enabled=true", "auth.oauth.enabled=true"]),
         "auth.externalProxy.enabled cannot be used together with auth.oauth.enabled"),
        ("externalProxy with ingress oauth2-proxy",
         dict(sets=["auth.externalProxy.enabled=true", "ingress.oauth2-proxy.enabled=true"]),
         "auth.externalProxy.enabled cannot be used together with ingress.oauth2-proxy.enabled"),
        ("externalProxy jwt",
         dict(sets=["auth.externalProxy.enabled=true", "auth.externalProxy.headerFormat=jwt"]),
         "auth.externalProxy.headerFormat=jwt is not supported by Skydeck yet"),
        ("oauth2-proxy without issuer",
         dict(sets=["ingress.oauth2-proxy.enabled=true", "ingress.oauth2-proxy.client-id=a"]),
         "ingress.oauth2-proxy.oidc-issuer-url is required when ingress.oauth2-proxy.enabled is true"),
        ("oauth2-proxy without client",
         dict(sets=["auth.oauth.enabled=true", "auth.oauth.oidc-issuer-url=https://i"]),
         "auth.oauth.client-id and auth.oauth.client-secret are required"),
        ("oauth2-proxy with two redis sources",
         dict(sets=["auth.oauth.enabled=true", "auth.oauth.oidc-issuer-url=https://i",
                    "auth.oauth.client-details-from-secret=s", "auth.oauth.redis-url=redis://r",
                    "auth.oauth.redis-secret=r"]),
         "auth.oauth.redis-url and auth.oauth.redis-secret are mutually exclusive"),
        ("auth.oauth without ingress",
         dict(sets=["auth.oauth.enabled=true", "ingress.enabled=false"]),
         "auth.oauth.enabled needs ingress.enabled=true"),
        ("no authentication at all",
         dict(sets=["apiService.enableServiceAccounts=false"]),
         "No authentication would be on, and Skydeck refuses to serve a network without it. Turn on at least one of: ingress.authCredentials"),
        ("no authentication, service accounts off by the new key",
         dict(sets=["auth.serviceAccount.enabled=false"]),
         "apiService.insecureNoAuth=true"),
        ("user management without a first admin",
         dict(sets=["apiService.enableUserManagement=true", "apiService.initialBasicAuthCredentials=null"]),
         "apiService.enableUserManagement needs a first admin: set apiService.initialBasicAuthCredentials"),
        ("empty trustedProxies",
         dict(files=[BASIC], set_json=["apiService.trustedProxies=[]"]),
         "apiService.trustedProxies is empty"),
        ("rbac.create=false without a service account",
         dict(sets=["rbac.create=false"]),
         "rbac.create=false needs rbac.serviceAccountName"),
        ("metrics on the API port",
         dict(sets=["apiService.metrics.enabled=true", "apiService.metrics.port=46580"]),
         "apiService.metrics.port must differ from the API port 46580"),
        ("legacy NodePort without ingress-nginx",
         dict(sets=["ingress.nodePortEnabled=true", "ingress-nginx.enabled=false"]),
         "ingress.nodePortEnabled=true exposes the bundled ingress-nginx controller, which is off"),
        ("resources below the minimum (cpu)",
         dict(sets=["apiService.resources.requests.cpu=100m"]),
         "apiService.resources.requests (cpu 100m, memory 512Mi) are below what Skydeck needs"),
        ("resources below the minimum (memory)",
         dict(sets=["apiService.resources.requests.memory=200Mi"]),
         "or set apiService.skipResourceCheck=true"),
        ("resources unset",
         dict(sets=["apiService.resources.requests=null"]),
         "(cpu unset, memory unset)"),
    ]

    def test_each_failure_fires_with_its_message(self):
        def run(case):
            kw = dict(case[1])
            files = kw.pop("files", [])
            return render(*files, **kw)

        for (title, _, message), r in zip(self.CASES, parallel(run, self.CASES)):
            with self.subTest(title):
                self.assertNotEqual(r.rc, 0, "rendered although: " + title)
                self.assertIn(message, r.stderr)

    def test_lint_reports_failures(self):
        # helm lint runs `fail` in lint mode: it logs the message and goes on
        # (template and install stop). Check that the message reaches the admin.
        p = helm("lint", "--strict", CHART_COPY, "--set", "apiService.upgradeStrategy=RollingUpdate")
        self.assertIn("needs an external database", p.stdout + p.stderr)

    def test_resource_quantities(self):
        cases = (("250m", "256Mi", True), ("0.25", "268435456", True), ("1", "1Gi", True),
                 ("0.1", "1Gi", False), ("2", "0.2Gi", False), ("2", "300M", True),
                 ("2", "250M", False), ("2", "1G", True))
        renders = parallel(lambda c: render(BASIC, set_strings=["apiService.resources.requests.cpu=" + c[0],
                                                                "apiService.resources.requests.memory=" + c[1]]), cases)
        for (cpu, mem, fine), r in zip(cases, renders):
            with self.subTest(cpu=cpu, memory=mem):
                self.assertEqual(r.rc == 0, fine, r.stderr)
                if not fine:
                    self.assertIn("(cpu %s, memory %s) are below" % (cpu, mem), r.stderr)
        r = ok(BASIC, sets=["apiService.resources.requests.cpu=2"])  # a number, not a string
        self.assertEqual(r.container()["resources"]["requests"]["cpu"], 2)
        r = ok(BASIC, sets=["apiService.skipResourceCheck=true", "apiService.resources.requests.cpu=10m"])
        self.assertEqual(r.container()["resources"]["requests"]["cpu"], "10m")

    def test_fixes_named_in_the_messages_work(self):
        ok(sets=["apiService.enableServiceAccounts=false", "apiService.insecureNoAuth=true"])
        ok(BASIC, sets=["apiService.enableServiceAccounts=false"])
        ok(sets=["apiService.upgradeStrategy=RollingUpdate", "apiService.dbConnectionSecretName=db",
                 "storage.accessMode=ReadWriteMany"])


# --------------------------------------------------------------------------
# NOTES.txt.
# --------------------------------------------------------------------------


class NotesTest(unittest.TestCase):
    WARNING = "WARNING: apiService.config is set during an upgrade; it will be IGNORED."

    def test_upgrade_with_config_warns(self):
        r = ok("pre-deploy-hook.yaml", extra=("--is-upgrade",))
        self.assertIn(self.WARNING, r.notes)
        self.assertIn("skydeck config set config.yaml", r.notes)

    def test_install_with_config_does_not_warn(self):
        r = ok("pre-deploy-hook.yaml")
        self.assertNotIn("IGNORED", r.notes)

    def test_upgrade_without_config_does_not_warn(self):
        r = ok(BASIC, extra=("--is-upgrade",))
        self.assertNotIn("IGNORED", r.notes)

    def test_tokens_only_warns_that_no_one_can_log_in(self):
        self.assertIn("no one can log in yet", ok().notes)
        self.assertNotIn("no one can log in yet", ok(BASIC).notes)
        self.assertNotIn("no one can log in yet", ok("user-management.yaml").notes)

    def test_token_login(self):
        r = ok("user-management.yaml")
        self.assertIn("skydeck api login -e $ENDPOINT --token sky_…", r.notes)
        self.assertIn("SKYPILOT_SERVICE_ACCOUNT_TOKEN=sky_… sky api login -e $ENDPOINT", r.notes)
        self.assertNotIn("--token", ok(BASIC).notes)

    def test_https_endpoint_with_tls(self):
        r = ok(BASIC, sets=["ingress.tls.enabled=true"])
        self.assertIn("ENDPOINT=https://$HOST", r.notes)
        self.assertEqual(r.get("Ingress", "skydeck-ingress")["spec"]["tls"], [{"secretName": "skydeck-tls-secrets"}])


if __name__ == "__main__":
    unittest.main(verbosity=int(os.environ.get("SKYDECK_TEST_VERBOSITY", "1")))
