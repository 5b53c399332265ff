"""A cluster whose Gateway API CRD serves Gateways at v1beta1 only: `renew --once` and the
controller both find the Gateway (one source table, API discovery) and issue its certificate."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from .conftest import ROOT, Lab, read_secret, verify_chain
from .controllers import ControllerProcess, controller_config, free_port, wait_for

pytestmark = pytest.mark.lab

GROUP = "gateway.networking.k8s.io"
CRD = f"gateways.{GROUP}"


def _gateways_served_at(api: ApiClient, version: str) -> bool:
    """Whether API discovery lists Gateways at `version` (what certbotk8s asks)."""
    try:
        resources = k8s.CustomObjectsApi(api).get_api_resources(GROUP, version)
    except k8s.ApiException as e:
        if e.status == 404:
            return False
        raise
    return any(r.name == "gateways" for r in resources.resources)


def _serve_v1(api: ApiClient, served: bool) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    crd = ext.read_custom_resource_definition(CRD)
    index = next(i for i, v in enumerate(crd.spec.versions) if v.name == "v1")
    ext.patch_custom_resource_definition(
        CRD, [{"op": "replace", "path": f"/spec/versions/{index}/served", "value": served}])
    wait_for(lambda: _gateways_served_at(api, "v1") is served, 30,
             f"Gateways {'' if served else 'no longer '}served at v1")


@pytest.fixture
def v1beta1_only(admin_api: ApiClient) -> Iterator[None]:
    """The Gateway CRD with v1 not served (v1 stays its storage version); restored after."""
    _serve_v1(admin_api, False)
    assert _gateways_served_at(admin_api, "v1beta1")
    try:
        yield
    finally:
        _serve_v1(admin_api, True)


def _gateway(api: ApiClient, namespace: str, name: str, host: str) -> str:
    """A v1beta1 Gateway (created through v1beta1: v1 is not served) with an HTTPS listener
    for `host` and an HTTP listener for the HTTP-01 route; returns its Secret's name."""
    secret = f"{name}-tls"
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, "v1beta1", namespace, "gateways", {
            "apiVersion": f"{GROUP}/v1beta1", "kind": "Gateway",
            "metadata": {"name": name, "annotations": {"certbotk8s.io/enabled": "true"}},
            "spec": {"gatewayClassName": "example", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80},
                {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": host,
                 "tls": {"mode": "Terminate",
                         "certificateRefs": [{"kind": "Secret", "name": secret}]}}]},
        })
    return secret


def _issued(lab: Lab, api: ApiClient, namespace: str, secret: str) -> None:
    found = read_secret(api, namespace, secret)
    assert found is not None, f"Secret {namespace}/{secret} was not written"
    verify_chain(base64.b64decode(found.data["tls.crt"]), lab.roots())


def test_renew_once_finds_a_v1beta1_gateway(lab: Lab, admin_api: ApiClient, namespace: str,
                                            controller_api: ApiClient, v1beta1_only: None
                                            ) -> None:
    secret = _gateway(admin_api, namespace, "beta", lab.host("beta-once"))
    env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
               CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"])
    run = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "renew", "--once",
                          "-n", namespace], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=240)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "UnsupportedApiVersion" not in out
    _issued(lab, admin_api, namespace, secret)


def test_the_controller_finds_a_v1beta1_gateway(lab: Lab, admin_api: ApiClient, namespace: str,
                                                controller_api: ApiClient, tmp_path: Path,
                                                v1beta1_only: None) -> None:
    config = controller_config(lab, tmp_path, "beta")
    ctl = ControllerProcess(lab, config, free_port(), f"test-{uuid.uuid4().hex[:8]}", "beta",
                            tmp_path).start()
    try:
        ctl.wait_leading()
        secret = _gateway(admin_api, namespace, "beta", lab.host("beta-ctl"))
        wait_for(lambda: read_secret(admin_api, namespace, secret), 30, "the Gateway's Secret")
        _issued(lab, admin_api, namespace, secret)
        log = ctl.log_path.read_text(errors="replace")
        assert f"{CRD}: reading {GROUP}/v1beta1" in log
        assert "UnsupportedApiVersion" not in log
    finally:
        ctl.stop()
