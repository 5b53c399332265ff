"""manifests/: each overlay renders with kubectl kustomize and passes a server-side dry-run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config.settings import load_config
from tests.lab.conftest import ROOT, Lab

pytestmark = pytest.mark.lab

MANIFESTS = ROOT / "manifests"
OVERLAYS = ("controller", "cronjob", "both")
ISTIO_COMPONENT = MANIFESTS / "components" / "istio-egress"
SOLVER_LABEL = "certbotk8s.io/http01-solver"

Doc = dict[str, Any]


def _kubectl(lab: Lab) -> str:
    path = lab.env.get("KUBECTL")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("KUBECTL missing from .lab/env or not executable: run lab/up (lab/kubectl.sh)")
    return path


def _run(lab: Lab, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": lab["KUBECONFIG"]}
    result = subprocess.run([_kubectl(lab), *args], input=stdin, capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _render(lab: Lab, path: Path) -> str:
    return _run(lab, "kustomize", str(path))


def _docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def rendered(lab: Lab) -> dict[str, list[Doc]]:
    return {overlay: _docs(_render(lab, MANIFESTS / "overlays" / overlay))
            for overlay in OVERLAYS}


@pytest.fixture
def with_istio(tmp_path: Path) -> Callable[[str], Path]:
    """A kustomization outside the tree: one overlay plus the istio-egress component."""

    def make(overlay: str) -> Path:
        d = tmp_path / overlay
        d.mkdir()
        rel = os.path.relpath(MANIFESTS, d)
        (d / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"{rel}/overlays/{overlay}"],
            "components": [f"{rel}/components/istio-egress"],
        }))
        return d

    return make


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_server_side_dry_run(lab: Lab, overlay: str) -> None:
    text = _render(lab, MANIFESTS / "overlays" / overlay)
    out = _run(lab, "apply", "--dry-run=server", "-f", "-", stdin=text)
    applied = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(_docs(text)), out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_with_istio_egress_passes_dry_run(
    lab: Lab, overlay: str, with_istio: Callable[[str], Path]
) -> None:
    text = _render(lab, with_istio(overlay))
    entry = _one(_docs(text), "ServiceEntry")
    assert "acme-v02.api.letsencrypt.org" in entry["spec"]["hosts"]
    assert "acme-staging-v02.api.letsencrypt.org" in entry["spec"]["hosts"]
    out = _run(lab, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert "serviceentry.networking.istio.io/certbotk8s-acme" in out


def test_optional_monitoring_renders(lab: Lab) -> None:
    """Not dry-run: the prometheus-operator CRDs are not in the lab."""
    docs = _docs(_render(lab, MANIFESTS / "optional"))
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    (endpoint,) = _one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    rules = {r["alert"]: r for g in _one(docs, "PrometheusRule")["spec"]["groups"]
             for r in g["rules"]}
    assert 'certbotk8s_certificate_ready_status{condition="False"}' in \
        rules["CertbotK8sCertificateNotReady"]["expr"]
    assert rules["CertbotK8sCertificateNotReady"]["for"] == "1h"
    assert "0.05 *" in rules["CertbotK8sCertificateExpiresSoon"]["expr"]
    assert "CertbotK8sNoLeader" in rules and "CertbotK8sRenewPassStale" not in rules
    assert "certbotk8s_certificate_failed_attempts" in rules["CertbotK8sRenewalFailing"]["expr"]
    # Every metric an alert uses is one the controller exports.
    exported = {m.name for m in Metrics().registry.collect()}
    for rule in rules.values():
        for name in re.findall(r"certbotk8s_[a-z_]+", rule["expr"]):
            assert name in exported or name.removesuffix("_bucket") in exported, name
    dashboard = _one(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["certbotk8s.json"])["panels"]
    for panel in panels:
        for target in panel["targets"]:
            for name in re.findall(r"certbotk8s_[a-z_]+", target["expr"]):
                base = re.sub(r"_(bucket|total)$", "", name)
                assert name in exported or base in exported, name


def test_optional_cronjob_monitoring_renders(lab: Lab) -> None:
    """CronJob mode: the certificate alerts and the pass's freshness, no leader alert."""
    docs = _docs(_render(lab, MANIFESTS / "optional" / "cronjob"))
    assert [d["kind"] for d in docs] == ["PrometheusRule"]
    rules = {r["alert"] for g in docs[0]["spec"]["groups"] for r in g["rules"]}
    assert {"CertbotK8sCertificateExpiresSoon", "CertbotK8sRenewPassStale",
            "CertbotK8sRenewPassMissing"} <= rules
    assert "CertbotK8sNoLeader" not in rules


def test_both_overlays_in_one_kustomization_render_once(lab: Lab) -> None:
    """overlays/both is one base with two components: one Namespace, one ServiceAccount."""
    docs = _docs(_render(lab, MANIFESTS / "overlays" / "both"))
    assert [d["kind"] for d in docs].count("Namespace") == 1
    assert [d["kind"] for d in docs].count("ServiceAccount") == 1
    assert {"Deployment", "CronJob"} <= {d["kind"] for d in docs}


def test_renamed_namespace_moves_the_controller_namespace_too(lab: Lab, tmp_path: Path) -> None:
    """A kustomize `namespace:` moves every object, and controllerNamespace with them."""
    namespace = f"tls-{uuid.uuid4().hex[:8]}"
    d = tmp_path / "renamed"
    d.mkdir()
    (d / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": namespace,
        "namePrefix": f"{namespace}-",  # cluster-scoped RBAC apart from the lab's own
        "resources": [os.path.relpath(MANIFESTS / "overlays" / "both", d)],
    }))
    text = _render(lab, d)
    docs = _docs(text)
    assert {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]} \
        == {namespace}
    binding = _one(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == namespace
    # The config leaves controllerNamespace to the pod's namespace (downward API).
    for overlay in ("controller", "cronjob"):
        env = {e["name"]: e for e in _pod_spec(docs, overlay)["containers"][0]["env"]}
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    config = load_config(_one(docs, "ConfigMap")["data"]["config.yaml"], namespace)
    assert config.controller_namespace == namespace
    try:
        out = _run(lab, "apply", "--server-side", "-f", "-", stdin=text)
        assert f"namespace/{namespace} serverside-applied" in out
        assert f"deployment.apps/{namespace}-certbotk8s serverside-applied" in out
    finally:
        _run(lab, "delete", "--ignore-not-found", "clusterrole,clusterrolebinding",
             f"{namespace}-certbotk8s")


def _pod_spec(docs: list[Doc], overlay: str) -> Doc:
    if overlay in ("controller", "both"):
        spec: Doc = _one(docs, "Deployment")["spec"]["template"]["spec"]
    else:
        cron = _one(docs, "CronJob")
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(rendered: dict[str, list[Doc]], overlay: str) -> None:
    pod = _pod_spec(rendered[overlay], overlay)
    assert pod["serviceAccountName"] == "certbotk8s"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/certbotk8s"]["readOnly"] is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http01"] == 8089
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_deployment(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["controller"]
    deployment = _one(docs, "Deployment", "certbotk8s")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "controller"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http01": 8089, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    pdb = _one(docs, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_cronjob(rendered: dict[str, list[Doc]]) -> None:
    cron = _one(rendered["cronjob"], "CronJob", "certbotk8s-renew")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    minute = cron["spec"]["schedule"].split()[0]
    assert minute.isdigit() and int(minute) % 15 != 0, "Let's Encrypt: avoid round minutes"
    (container,) = _pod_spec(rendered["cronjob"], "cronjob")["containers"]
    args = container["args"]
    assert args[:3] == ["renew", "--once", "--shared-tokens"]
    stop_after = float(args[args.index("--stop-after") + 1])
    deadline = cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert stop_after < deadline, "the run stops starting orders before the Job is killed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_solver_service_selects_the_token_serving_pods(rendered: dict[str, list[Doc]],
                                                       overlay: str) -> None:
    docs = rendered[overlay]
    service = _one(docs, "Service", "certbotk8s-solver")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (80, "http01")
    if overlay in ("controller", "both"):
        labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    else:
        labels = _one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
            "labels"]
    assert labels[SOLVER_LABEL] == "true"
    assert service["spec"]["selector"].items() <= labels.items()


# The proxies whose pods may reach the HTTP-01 port by default (finding 1 of issue 20: the port
# was open to every pod, so any pod could hold the responder's connections).
HTTP01_PEERS = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
     "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
     "podSelector": {"matchLabels": {"istio": "ingressgateway"}}},
]


def _rules_by_port(policy: Doc) -> dict[str, Doc]:
    return {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_http01_from_proxy_pods_and_metrics_from_monitoring_only(
        rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    policy = _one(docs, "NetworkPolicy", "certbotk8s")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    pod = _pod_spec(docs, overlay)
    labels = (_one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
              if overlay == "controller" else
              _one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
                  "labels"])
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    by_port = _rules_by_port(policy)
    assert set(by_port) == {"http01", "metrics"}
    # Each peer is a namespace AND a pod selector in one element (both must match), by the
    # namespace name label the API server sets: a tenant can label its pods, not rename its
    # namespace.
    assert by_port["http01"]["from"] == HTTP01_PEERS
    assert by_port["metrics"]["from"] == [{"namespaceSelector": {"matchLabels": {
        "certbotk8s.io/metrics-access": "true"}}}]
    container_ports = {p["name"] for c in pod["containers"] for p in c["ports"]}
    assert "http01" in container_ports


def _documented_patch() -> Doc:
    """The kustomization docs/http01.md#networkpolicy shows for the HTTP-01 peers."""
    page = (ROOT / "docs" / "http01.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", page, re.S)]
    (found,) = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "Kustomization"]
    return found


def test_the_documented_patch_point_replaces_the_http01_peers(lab: Lab, tmp_path: Path) -> None:
    kustomization = _documented_patch()
    (patch,) = kustomization["patches"]
    (operation,) = yaml.safe_load(patch["patch"])
    assert operation["path"] == "/spec/ingress/0/from"
    kustomization["resources"] = [os.path.relpath(MANIFESTS / "overlays" / "controller",
                                                  tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    policy = _one(_docs(_render(lab, tmp_path)), "NetworkPolicy", "certbotk8s")
    by_port = _rules_by_port(policy)
    assert by_port["http01"]["from"] == operation["value"] != HTTP01_PEERS
    assert by_port["metrics"]["from"] == [{"namespaceSelector": {"matchLabels": {
        "certbotk8s.io/metrics-access": "true"}}}]
    out = _run(lab, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(policy))
    assert "(server dry run)" in out, out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_map_is_a_valid_config(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    config_map = _one(docs, "ConfigMap")
    config = load_config(config_map["data"]["config.yaml"], "certbotk8s")
    assert {"letsencrypt", "letsencrypt-staging"} <= set(config.issuers)
    assert config.controller_namespace == "certbotk8s"
    assert not config.warnings
    assert config.solver.http01.port == 8089
    assert config.solver.http01.solver_service == "certbotk8s-solver"
    assert config.solver.http01.solver_service_port == 80
    volumes = {v["name"]: v for v in _pod_spec(docs, overlay)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


def test_rbac_is_least_privilege(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["controller"]
    cluster_role = _one(docs, "ClusterRole", "certbotk8s")
    role = _one(docs, "Role", "certbotk8s")
    for rule in cluster_role["rules"] + role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
    secret_verbs = {v for rule in cluster_role["rules"]
                    if "" in rule["apiGroups"] and "secrets" in rule["resources"]
                    for v in rule["verbs"]}
    assert "delete" not in secret_verbs
    assert "deletecollection" not in secret_verbs
    # The rendered RBAC is exactly manifests/base/rbac.yaml, which the e2e tests bind.
    source = {(d["kind"], d["metadata"]["name"]): d
              for d in _docs((MANIFESTS / "base" / "rbac.yaml").read_text())}
    for kind in ("ClusterRole", "Role"):
        assert _one(docs, kind)["rules"] == source[(kind, "certbotk8s")]["rules"]
