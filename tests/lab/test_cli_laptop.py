"""The CLI as a user runs it from a laptop, against the lab's API server and Pebble: only a
kubeconfig and `--context` (the config read from the controller's ConfigMap), `-o json` parsed,
the detail view, `renew` of a Secret whose first issuance failed and is backing off, and `renew`
beside a running controller that holds the HTTP-01 port (as inside its pod)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .controllers import free_port
from .records_view import record_of
from .test_e2e_renew import _ingress, assert_certificate
from .test_namespaced import NamespacedController

pytestmark = pytest.mark.lab

CONFIG_MAP = "certbotk8s-config-laptop"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "certbotk8s.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture
def laptop(lab: Lab, admin_api: ApiClient, tmp_path: Path) -> dict[str, str]:
    """The environment of a laptop: a kubeconfig whose current context points nowhere and whose
    `lab` context is the lab's admin, no config file; the controller's ConfigMap in the cluster
    (as the manifests install it: labelled, key config.yaml)."""
    admin = yaml.safe_load(Path(lab["KUBECONFIG"]).read_text())
    cluster, user = admin["clusters"][0], admin["users"][0]
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster, {"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [user],
        "contexts": [{"name": "lab", "context": {"cluster": cluster["name"],
                                                 "user": user["name"]}},
                     {"name": "gone", "context": {"cluster": "gone", "user": user["name"]}}],
        "current-context": "gone",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    body = {"metadata": {"name": CONFIG_MAP, "namespace": "certbotk8s",
                         "labels": {"app.kubernetes.io/name": "certbotk8s"}},
            "data": {"config.yaml": Path(lab["CERTBOTK8S_CONFIG"]).read_text()}}
    core: Any = k8s.CoreV1Api(admin_api)
    try:
        core.create_namespaced_config_map("certbotk8s", body)
    except ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_config_map(CONFIG_MAP, "certbotk8s", body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTBOTK8S_")}
    env["KUBECONFIG"] = str(path)
    env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    assert not Path("/etc/certbotk8s/config.yaml").exists()
    return env


def test_the_cli_works_with_only_a_kubeconfig_and_a_context(
    lab: Lab, admin_api: ApiClient, namespace: str, laptop: dict[str, str]
) -> None:
    host = lab.host("laptop")
    _ingress(admin_api, namespace, "web", {"tls": [{"hosts": [host], "secretName": "web-tls"}]})
    # The current context points nowhere: one line, no traceback.
    gone = _cli("status", "-n", namespace, env=laptop)
    assert gone.returncode == 1 and "Traceback" not in gone.stderr, gone
    assert "unreachable" in gone.stderr or "connection refused" in gone.stderr, gone.stderr

    issued = _cli("renew", "--once", "-n", namespace, "--context", "lab", env=laptop)
    assert issued.returncode == 0, issued
    assert f"configuration from ConfigMap certbotk8s/{CONFIG_MAP}" in issued.stderr
    secret = assert_certificate(lab, admin_api, namespace, "web-tls", [host])

    listed = _cli("status", "-n", namespace, "-o", "json", "--context", "lab", env=laptop)
    assert listed.returncode == 0, listed
    (row,) = [r for r in json.loads(listed.stdout) if r["secret"] == f"{namespace}/web-tls"]
    assert (row["state"], row["hosts"], row["failures"], row["wait"], row["last_error"]) == (
        "scheduled", [host], 0, None, None)
    not_after = secret_meta.parse_time(row["not_after"])
    renews = secret_meta.parse_time(row["next_renewal"])
    assert row["not_after"] == secret.metadata.annotations[secret_meta.NOT_AFTER]
    assert not_after is not None and renews is not None and renews < not_after

    shown = _cli("status", f"{namespace}/web-tls", "-o", "json", "--context", "lab", env=laptop)
    assert shown.returncode == 0, shown
    detail = json.loads(shown.stdout)
    assert detail["wanted"]["hosts"] == [host] and detail["wanted"]["issuer"] == "pebble"
    held = detail["held"]["certificate"]
    assert held["hosts"] == [host]
    assert held["serial"] == secret.metadata.annotations[secret_meta.SERIAL]
    assert detail["renewal"]["at"] == row["next_renewal"]
    assert detail["renewal"]["reason"] == row["reason"]
    assert detail["last_failure"] is None
    assert "Issued" in [e["reason"] for e in detail["events"]]
    text = _cli("status", f"{namespace}/web-tls", "--context", "lab", env=laptop)
    assert text.returncode == 0 and f"serial: {held['serial']}" in text.stdout, text
    missing = _cli("status", f"{namespace}/nobody", "--context", "lab", env=laptop)
    assert missing.returncode == 1 and "no source wants Secret" in missing.stderr


def test_renew_orders_a_secret_never_issued_while_it_backs_off(
    lab: Lab, admin_api: ApiClient, namespace: str, laptop: dict[str, str], tmp_path: Path
) -> None:
    host = lab.host("retry")
    _ingress(admin_api, namespace, "retry",
             {"tls": [{"hosts": [host], "secretName": "retry-tls"}]})
    # A first issuance that fails at the CA: tokens served where Pebble does not look.
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    config["solver"]["http01"].update(port=free_port(), selfCheck=False)
    deaf = tmp_path / "deaf.yaml"
    deaf.write_text(yaml.safe_dump(config))
    env = dict(laptop, KUBECONFIG=lab["KUBECONFIG"])
    failed = _cli("renew", "--once", "-n", namespace, "--config", str(deaf), env=env)
    assert failed.returncode == 1 and read_secret(admin_api, namespace, "retry-tls") is None
    assert record_of(admin_api, namespace, "retry-tls")[secret_meta.FAILURES] == "1"
    held = _cli("renew", "--once", "-n", namespace, "--config", str(deaf), env=env)
    assert "backing off after 1 failed" in held.stdout, held  # no second attempt yet

    lease = f"absent-{uuid.uuid4().hex[:6]}"  # no controller holds it
    run = _cli("renew", f"{namespace}/retry-tls", "--lease-name", lease,
               "--config", lab["CERTBOTK8S_CONFIG"], env=env)
    assert run.returncode == 0, run
    assert f"{namespace}/retry-tls: no such Secret yet (never issued); ordering it here" \
        in run.stdout
    assert f"{namespace}/retry-tls: renewed" in run.stdout
    assert_certificate(lab, admin_api, namespace, "retry-tls", [host])
    assert secret_meta.FAILURES not in record_of(admin_api, namespace, "retry-tls")


def test_renew_beside_a_controller_that_holds_the_http01_port(
    lab: Lab, admin_api: ApiClient, controller_api: ApiClient, namespace: str, tmp_path: Path
) -> None:
    """Inside the controller's pod the command cannot bind the HTTP-01 port (it crashed with an
    AttributeError there): it orders through the shared token store, which the controller's
    responder answers. The controller watches another namespace, so it never orders this
    Secret itself."""
    host = lab.host("inpod")
    _ingress(admin_api, namespace, "inpod",
             {"tls": [{"hosts": [host], "secretName": "inpod-tls"}]})
    config = Path(lab["CERTBOTK8S_CONFIG"])
    ctl = NamespacedController(Path(lab["CONTROLLER_KUBECONFIG"]), ["somewhere-else"], lab,
                               config, free_port(), f"test-{uuid.uuid4().hex[:8]}", "inpod",
                               tmp_path).start()
    try:
        ctl.wait_leading()
        env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
                   CERTBOTK8S_CONFIG=str(config))
        run = _cli("renew", f"{namespace}/inpod-tls", "--lease-name", ctl.lease, env=env)
    finally:
        ctl.stop()
    assert run.returncode == 0, run
    assert "Traceback" not in run.stderr
    assert "is taken" in run.stderr and "the controller's replicas answer" in run.stderr
    assert f"{namespace}/inpod-tls: renewed" in run.stdout
    assert_certificate(lab, admin_api, namespace, "inpod-tls", [host])
