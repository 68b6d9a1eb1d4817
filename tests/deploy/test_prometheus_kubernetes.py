"""config/kubernetes/monitoring: the optional Prometheus Operator component.

kubernetes-validate cannot know the operator's CRDs, so these manifests are checked
structurally here (known fields only, durations the operator accepts, selectors that
match the Service), the PrometheusRule against alerts.yaml, and, where kubectl is
installed, the component rendered by kustomize together with the base.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import ALERTS, PROM_DIR, ROOT

KDIR = ROOT / "config" / "kubernetes"
MDIR = KDIR / "monitoring"
API = "monitoring.coreos.com/v1"
JOB = "gdpr-daemon"  # the job name the rules' `up{job=...}` selector expects
# The operator's duration pattern (monitoring.coreos.com/v1 Duration).
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")

SERVICEMONITOR_SPEC = {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels"}
ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
RULE = {"alert", "record", "expr", "for", "labels", "annotations"}


def load(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return doc


def component() -> dict:
    return load(MDIR / "kustomization.yaml")


def manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in (load(MDIR / name) for name in component()["resources"])}


def service() -> dict:
    return load(KDIR / "service.yaml")


def base_labels() -> dict[str, str]:
    """The labels the base kustomization adds to every resource's metadata."""
    k = load(KDIR / "kustomization.yaml")
    return {key: value for entry in k.get("labels", []) for key, value in entry["pairs"].items()}


def test_component_is_optional_and_lists_its_manifests():
    """A kustomize Component listing every manifest beside it; the base does not include it by default."""
    c = component()
    assert c["apiVersion"] == "kustomize.config.k8s.io/v1alpha1" and c["kind"] == "Component"
    assert set(c["resources"]) == {p.name for p in MDIR.glob("*.yaml")} - {"kustomization.yaml"}
    base = load(KDIR / "kustomization.yaml")
    assert "monitoring" not in base.get("components", []), "clusters without the operator apply the base as is"
    assert "monitoring" not in base["resources"]
    assert set(manifests()) == {"ServiceMonitor", "PrometheusRule"}


def test_prometheusrule_holds_the_rules_of_alerts_yaml():
    """The PrometheusRule's groups are exactly alerts.yaml's, and the file is what the generator writes."""
    rule = manifests()["PrometheusRule"]
    assert rule["apiVersion"] == API and rule["metadata"]["name"]
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    spec = importlib.util.spec_from_file_location("make_prometheusrule", PROM_DIR / "make_prometheusrule.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert (MDIR / "prometheusrule.yaml").read_text(encoding="utf-8") == generator.render(), (
        "run python3 config/prometheus/make_prometheusrule.py"
    )


def test_prometheusrule_fields_are_ones_the_operator_knows():
    """Groups have a name and rules; each rule only known fields, string labels and annotations, a valid `for`."""
    for group in manifests()["PrometheusRule"]["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= RULE and "expr" in rule and ("alert" in rule) != ("record" in rule), rule
            assert DURATION.match(rule.get("for", "0")), rule["alert"]
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values()), rule["alert"]


def test_servicemonitor_scrapes_the_metrics_service_as_job_gdpr_daemon():
    """The ServiceMonitor selects the metrics Service and its port, and names the job the rules expect."""
    sm = manifests()["ServiceMonitor"]
    assert sm["apiVersion"] == API and sm["metadata"]["name"]
    spec = sm["spec"]
    assert set(spec) <= SERVICEMONITOR_SPEC
    svc = service()
    labels = {**svc["metadata"].get("labels", {}), **base_labels()}
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert labels[spec["jobLabel"]] == JOB
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= ENDPOINT
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])


def test_kustomize_renders_the_base_with_the_component(tmp_path):
    """`kubectl kustomize` of the base plus `components: [monitoring]` renders both CRs, labelled like the rest."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here; the structural checks above still ran")
    tree = tmp_path / "kubernetes"
    shutil.copytree(KDIR, tree)
    with (tree / "kustomization.yaml").open("a", encoding="utf-8") as fh:
        fh.write("components:\n  - monitoring\n")
    proc = subprocess.run([kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(proc.stdout) if d}
    assert {"Deployment", "Service", "ServiceMonitor", "PrometheusRule"} <= set(docs)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert base_labels().items() <= docs[kind]["metadata"]["labels"].items(), kind
    svc_labels = docs["Service"]["metadata"]["labels"]
    assert docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= svc_labels.items()
    assert svc_labels[docs["ServiceMonitor"]["spec"]["jobLabel"]] == JOB
    base = subprocess.run([kubectl, "kustomize", str(KDIR)], capture_output=True, text=True, timeout=120)
    assert base.returncode == 0 and "monitoring.coreos.com" not in base.stdout, "the base stays operator-free"
