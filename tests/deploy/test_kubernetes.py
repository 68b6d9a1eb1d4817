"""config/kubernetes: schema-valid manifests (strict) that wire the daemon the way it expects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from gdpr_daemon.config import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "config" / "kubernetes"
K8S_VERSION = "1.30.0"  # a version whose schemas kubernetes-validate ships (it validates offline)


def docs() -> dict[str, dict]:
    """kind -> the one resource of that kind in the directory (kustomization excluded)."""
    found: dict[str, dict] = {}
    for path in sorted(KDIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                assert doc["kind"] not in found, f"two {doc['kind']} resources"
                found[doc["kind"]] = doc
    return found


def pod_spec(kind: str) -> dict:
    return docs()[kind]["spec"]["template"]["spec"]


def container(kind: str) -> dict:
    (c,) = pod_spec(kind)["containers"]
    return c


def configmap_env() -> dict[str, str]:
    return docs()["ConfigMap"]["data"]


def test_kubernetes_validate_strict():
    """`kubernetes-validate --strict` accepts every manifest: known kinds, no unknown or misspelt fields."""
    files = [str(p) for p in sorted(KDIR.glob("*.yaml")) if p.name != "kustomization.yaml"]
    tool = Path(sys.executable).parent / "kubernetes-validate"
    argv = [str(tool)] if tool.exists() else [sys.executable, "-m", "kubernetes_validate"]
    proc = subprocess.run([*argv, "--strict", "-k", K8S_VERSION, *files], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A kind without a schema is only a WARN with exit 0: require a pass for every resource.
    assert lines and all(line.startswith("INFO ") and " passed " in line for line in lines), proc.stdout
    assert len(lines) == sum(len([d for d in yaml.safe_load_all(Path(f).read_text()) if d]) for f in files)


def test_kustomization_lists_every_manifest():
    """kustomization.yaml lists every manifest in the directory, and only existing ones."""
    k = yaml.safe_load((KDIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert k["kind"] == "Kustomization" and "namespace" not in k, "namespace-agnostic"
    listed = set(k["resources"])
    present = {p.name for p in KDIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert {i["name"] for i in k["images"]} == {container("Deployment")["image"], container("Job")["image"]}


def test_deployment_replicas_probes_and_ports():
    """Two replicas; liveness on /healthz and readiness on /readyz at the port the daemon is told to serve."""
    dep = docs()["Deployment"]
    assert dep["spec"]["replicas"] == 2
    c = container("Deployment")
    port = int(configmap_env()["GDPR_DAEMON_HEALTH_ADDRESS"].rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert ports[c[probe]["httpGet"]["port"]] == port
    assert c["args"] == ["run"]


def test_deployment_resources_and_security_context():
    """Requests and limits are set; non-root, read-only root with /tmp an emptyDir, no escalation, ALL dropped."""
    for kind in ("Deployment", "Job"):
        spec, c = pod_spec(kind), container(kind)
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["resources"]["limits"]["memory"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert spec["securityContext"]["runAsUser"] == 10001, "the image's uid"
        assert spec["automountServiceAccountToken"] is False
        tmp = {m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp"}
        assert any(v["name"] in tmp and "emptyDir" in v for v in spec["volumes"]), kind


def test_grace_period_exceeds_the_drain_bound():
    """terminationGracePeriodSeconds is longer than the configured drain bound, with room for logout."""
    grace = pod_spec("Deployment")["terminationGracePeriodSeconds"]
    drain = float(configmap_env().get(
        "GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS", Settings.model_fields["queue_shutdown_timeout_seconds"].default
    ))  # fmt: skip
    assert grace >= drain + 10


def test_configmap_is_complete_settings_and_no_secret():
    """The ConfigMap holds only real setting variables and no secret; with the Secret's file it loads."""
    env = configmap_env()
    known = {env_name(k) for k in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert not {k for k in env if "PASSWORD" in k or "TOKEN" in k}
    c = container("Deployment")
    password_file = next(e["value"] for e in c["env"] if e["name"] == "GDPR_DAEMON_OWNBACKUP_PASSWORD_FILE")
    mount = next(m for m in c["volumeMounts"] if password_file.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod_spec("Deployment")["volumes"] if v["name"] == mount["name"])
    secret = docs()["Secret"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert password_file.rpartition("/")[2] in secret["stringData"]
    assert {r["configMapRef"]["name"] for r in c["envFrom"]} == {docs()["ConfigMap"]["metadata"]["name"]}
    settings = load_settings(None, environ=env)
    settings.require_database()


def test_pdb_service_and_migrate_job_select_the_right_pods():
    """The PDB keeps one daemon pod; the Service targets the daemon's metrics port; the Job runs migrate."""
    labels = docs()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    pdb = docs()["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert docs()["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = docs()["Service"]["spec"]
    assert svc["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in svc["ports"]} <= {p["name"] for p in container("Deployment")["ports"]}
    job_labels = docs()["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not pdb["selector"]["matchLabels"].items() <= job_labels.items(), "the Job's pod is not in the PDB"
    job = container("Job")
    assert job["args"] == ["migrate"] and job["image"] == container("Deployment")["image"]
    assert pod_spec("Job")["restartPolicy"] in ("OnFailure", "Never")
