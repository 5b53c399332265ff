"""The RBAC the Helm chart and the kustomize overlays render grants exactly the calls the code
declares (adapters/kube/api_calls.py), both ways, under the chart's main value combinations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.rbac import Install, differences

from .conftest import Lab
from .test_chart import _pod, _refusal, _run, _template
from .test_manifests import MANIFESTS, _docs

pytestmark = pytest.mark.lab

SERVED = ["shop", "blog"]
ROUTE_CONTROLLER = {"solver": {"http01": {"routeNamespace": "controller"}}}

CHART_CASES: dict[str, tuple[dict[str, Any], Install]] = {
    "default": ({}, Install("tls-system")),
    "route-controller": ({"config": ROUTE_CONTROLLER},
                         Install("tls-system", route_namespace="controller")),
    "namespaced": ({"namespaces": SERVED}, Install("tls-system", tuple(SERVED))),
    "namespaced-route-controller": ({"namespaces": SERVED, "config": ROUTE_CONTROLLER},
                                    Install("tls-system", tuple(SERVED), "controller")),
    "cronjob-namespaced": ({"mode": "cronjob", "namespaces": SERVED},
                           Install("tls-system", tuple(SERVED))),
}


@pytest.mark.parametrize("case", sorted(CHART_CASES))
def test_chart_rbac_is_the_declared_calls(lab: Lab, tmp_path: Path, case: str) -> None:
    values, install = CHART_CASES[case]
    docs = _template(lab, tmp_path, values, release="edge", namespace="tls-system")
    assert differences(docs, install, "edge-certbotk8s") == ""


def test_chart_namespaced_mode_has_no_cluster_wide_rights(lab: Lab, tmp_path: Path) -> None:
    docs = _template(lab, tmp_path, {"mode": "both", "namespaces": SERVED}, release="edge",
                     namespace="tls-system")
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    bound = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding")
    assert bound == sorted([*SERVED, "tls-system"])
    for doc in docs:
        if doc["kind"] in ("Deployment", "CronJob"):
            (container,) = _pod(doc)["spec"]["containers"]
            assert [a for a in container["args"] if a.startswith("--namespace")] == [
                "--namespace=shop", "--namespace=blog"], doc["kind"]


def test_chart_cluster_mode_passes_no_namespace(lab: Lab, tmp_path: Path) -> None:
    docs = _template(lab, tmp_path, {"mode": "both"})
    args = [a for d in docs if d["kind"] in ("Deployment", "CronJob")
            for c in _pod(d)["spec"]["containers"] for a in c["args"]]
    assert not [a for a in args if a.startswith("--namespace")]


@pytest.mark.parametrize(("overlay", "install"), [
    ("controller", Install("certbotk8s")),
    ("both", Install("certbotk8s")),
    ("namespaced", Install("certbotk8s", ("team-a", "team-b"))),
])
def test_kustomize_rbac_is_the_declared_calls(lab: Lab, overlay: str, install: Install) -> None:
    docs = _docs(_run(lab, "KUBECTL", "kustomize", str(MANIFESTS / "overlays" / overlay)))
    assert differences(docs, install) == ""


def test_chart_refuses_to_serve_its_own_namespace(lab: Lab, tmp_path: Path) -> None:
    """The release namespace holds the controller's Secrets: no tenant sources there (and no
    second Role of the same name)."""
    refused = _refusal(lab, tmp_path, {"config": {"tenants": {"allowAnyHost": True}},
                                       "namespaces": ["shop", "default"]})
    assert "must not list the release namespace default" in refused
