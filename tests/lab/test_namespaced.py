"""Namespaced mode: `controller --namespace A --namespace B` under the Roles of
manifests/overlays/namespaced only (no ClusterRole) becomes ready and issues in A, never in C."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from .conftest import LAB_RBAC_MANIFEST, ROOT, Lab, apply_manifest, read_secret
from .controllers import ControllerProcess, wait_for
from .test_manifests import MANIFESTS, _docs, _render

pytestmark = pytest.mark.lab

OVERLAY = MANIFESTS / "overlays" / "namespaced"


class NamespacedController(ControllerProcess):
    """`certbotk8s controller -n A -n B` with its own kubeconfig (a Role-only identity)."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], *args: Any) -> None:
        super().__init__(*args)
        self.kubeconfig, self.namespaces = kubeconfig, namespaces

    def start(self) -> NamespacedController:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   CERTBOTK8S_CONFIG=str(self.config), POD_NAME=self.identity)
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "certbotk8s.cli", "controller",
                 "--metrics-address", "127.0.0.1", "--metrics-port", str(self.port),
                 "--lease-name", self.lease, "--lease-duration", "3",
                 "--identity", self.identity, *scope],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def test_overlay_has_no_cluster_wide_rights(lab: Lab) -> None:
    docs = _docs(_render(lab, OVERLAY))
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=team-a", "--namespace=team-b"]
    bound = {(d["metadata"]["namespace"]) for d in docs if d["kind"] == "RoleBinding"}
    assert bound == {"certbotk8s", "team-a", "team-b"}


def _role_only_identity(admin: ApiClient, lab: Lab, tmp_path: Path,
                        namespaces: dict[str, str]) -> Path:
    """A fresh ServiceAccount bound by the overlay's Roles (renamed, namespaces mapped) and a
    kubeconfig with its TokenRequest token."""
    sa = f"ns-ctl-{_uid()}"
    core: Any = k8s.CoreV1Api(admin)
    core.create_namespaced_service_account("certbotk8s", {"metadata": {"name": sa}})
    docs = [d for d in _docs(_render(lab, OVERLAY)) if d["kind"] in ("Role", "RoleBinding")]
    docs += _docs(LAB_RBAC_MANIFEST.read_text())  # its own Lease name (lab_rbac.yaml)
    for doc in docs:
        meta = doc["metadata"]
        meta["namespace"] = namespaces.get(meta["namespace"], meta["namespace"])
        meta["name"] = f"{meta['name']}-{sa}"  # never touch the lab controller's bindings
        if doc["kind"] == "RoleBinding":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{sa}"
            doc["subjects"] = [{"kind": "ServiceAccount", "name": sa,
                                "namespace": "certbotk8s"}]
    manifest = tmp_path / "roles.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    apply_manifest(admin, manifest)
    token = core.create_namespaced_service_account_token(sa, "certbotk8s", {
        "spec": {"audiences": [lab["KUBE_APISERVER"]], "expirationSeconds": 3600}}
    ).status.token
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ns",
        "clusters": [{"name": "lab", "cluster": {"server": lab["KUBE_APISERVER"],
                                                 "certificate-authority": lab["KUBE_CA_FILE"]}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "ns", "context": {"cluster": "lab", "user": sa}}]}))
    return kubeconfig


@pytest.fixture
def three_namespaces(admin_api: ApiClient) -> list[str]:
    names = [f"nsmode-{label}-{_uid()}" for label in ("a", "b", "c")]
    core: Any = k8s.CoreV1Api(admin_api)
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    return names


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ControllerProcess]]:
    procs: list[ControllerProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


def _ingress(admin: ApiClient, namespace: str, name: str, host: str) -> None:
    networking: Any = k8s.NetworkingV1Api(admin)
    networking.create_namespaced_ingress(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": {"certbotk8s.io/enabled": "true"}},
        "spec": {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})


def test_controller_runs_with_roles_only_in_its_namespaces(
        admin_api: ApiClient, lab: Lab, tmp_path: Path, three_namespaces: list[str],
        started: list[ControllerProcess]) -> None:
    a, b, c = three_namespaces
    kubeconfig = _role_only_identity(admin_api, lab, tmp_path, {"team-a": a, "team-b": b})
    # The identity really is narrow: listing Secrets cluster-wide is forbidden.
    from certbotk8s.adapters.kube.sources import load_api_client

    narrow = load_api_client(str(kubeconfig))
    with pytest.raises(k8s.exceptions.ApiException) as info:
        k8s.CoreV1Api(narrow).list_secret_for_all_namespaces()
    assert info.value.status == 403
    narrow.close()  # type: ignore[no-untyped-call]

    port = 19950 + os.getpid() % 40
    ctl = NamespacedController(kubeconfig, [a, b], lab, Path(lab["CERTBOTK8S_CONFIG"]), port,
                               f"nsmode-{_uid()}", f"nsmode-{_uid()}", tmp_path).start()
    started.append(ctl)
    ctl.wait_ready(60)
    wait_for(ctl.is_leader, 15, "leadership")
    _ingress(admin_api, c, "outside", lab.host("outside"))
    _ingress(admin_api, a, "inside", lab.host("inside"))
    _ingress(admin_api, b, "also", lab.host("also"))
    wait_for(lambda: read_secret(admin_api, a, "inside-tls"), 60, "Secret in namespace A")
    wait_for(lambda: read_secret(admin_api, b, "also-tls"), 60, "Secret in namespace B")
    assert read_secret(admin_api, c, "outside-tls") is None
    # (not a bare "403": a log line's milliseconds can read 403)
    assert "HTTP 403" not in ctl.log() and "forbidden" not in ctl.log().lower()

    # `renew --once -n A` (the CronJob) with the same Role-only identity.
    ctl.stop()  # frees the HTTP-01 port for the one-shot run
    _ingress(admin_api, a, "once", lab.host("once"))
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"])
    out = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "renew", "--once", "-n", a],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert read_secret(admin_api, a, "once-tls") is not None
