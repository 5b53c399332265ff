"""`certbotk8s renew NAMESPACE/SECRET` and `certbotk8s revoke` against Pebble, without a
controller (the command renews itself); revocation is read back from Pebble's management API."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs, keys
from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .test_e2e_renew import Run, _ingress, assert_certificate

pytestmark = pytest.mark.lab

RunCli = Callable[..., Run]


@pytest.fixture
def cli(lab: Lab, controller_api: ApiClient) -> RunCli:
    """The real CLI in a subprocess under the controller's RBAC-bound identity."""

    def run(*args: str) -> Run:
        env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
                   CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"])
        proc = subprocess.run([sys.executable, "-m", "certbotk8s.cli", *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=240)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    return run


def _serial_and_key(secret: Any) -> tuple[str, bytes]:
    crt = base64.b64decode(secret.data["tls.crt"])
    key = keys.load_key_pem(base64.b64decode(secret.data["tls.key"]))
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return certs.certificate_info(crt).serial, public


def _pebble_status(lab: Lab, serial: str) -> dict[str, Any]:
    response = requests.get(f"{lab['PEBBLE_MGMT']}/cert-status-by-serial/{serial}",
                            verify=lab["ACME_CA_BUNDLE"], timeout=5)
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def _issued(lab: Lab, admin_api: ApiClient, namespace: str, cli: RunCli,
            name: str) -> tuple[str, Any]:
    host = lab.host(name)
    _ingress(admin_api, namespace, name, {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}]})
    run = cli("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    return host, assert_certificate(lab, admin_api, namespace, f"{name}-tls", [host])


def test_renew_secret_now_without_a_controller(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: RunCli
) -> None:
    host, before = _issued(lab, admin_api, namespace, cli, "forced")
    old_serial, old_key = _serial_and_key(before)
    lease = f"absent-{uuid.uuid4().hex[:6]}"  # no controller holds this Lease
    run = cli("renew", f"{namespace}/forced-tls", "--lease-name", lease)
    assert run.code == 0, run
    assert f"{namespace}/forced-tls: renewed" in run.out
    after = assert_certificate(lab, admin_api, namespace, "forced-tls", [host])
    new_serial, new_key = _serial_and_key(after)
    assert new_serial != old_serial and new_key != old_key
    # The request is answered: the annotation went with the rewrite, the next pass is idle.
    assert secret_meta.RENEW_REQUESTED_AT not in after.metadata.annotations
    assert "0 issued or renewed" in cli("renew", "--once", "-n", namespace).out
    assert _pebble_status(lab, old_serial)["Status"] == "Valid"  # renewal does not revoke


def test_renew_refuses_unknown_and_foreign_secrets(
    admin_api: ApiClient, namespace: str, cli: RunCli
) -> None:
    run = cli("renew", f"{namespace}/nothing-here", "--lease-name", "absent-none")
    assert run.code == 1 and f"no source wants Secret {namespace}/nothing-here" in run.out
    core: Any = k8s.CoreV1Api(admin_api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "theirs"},
                                              "stringData": {"a": "b"}})
    run = cli("renew", f"{namespace}/theirs")
    assert run.code == 1 and "is not managed by certbotk8s" in run.out
    assert "Traceback" not in run.out
    # (A malformed NAMESPACE/SECRET is refused before any API call: tests/unit/test_cli.py.)


def test_revoke_key_compromise_then_reissue_with_a_new_key(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: RunCli
) -> None:
    host, before = _issued(lab, admin_api, namespace, cli, "leaked")
    old_serial, old_key = _serial_and_key(before)
    assert _pebble_status(lab, old_serial)["Status"] == "Valid"
    lease = f"absent-{uuid.uuid4().hex[:6]}"
    run = cli("revoke", f"{namespace}/leaked-tls", "--reason", "keyCompromise",
                     "--lease-name", lease)
    assert run.code == 0, run
    assert f"certificate {old_serial} revoked (keyCompromise, signed with the certificate key)" \
        in run.out
    status = _pebble_status(lab, old_serial)
    assert (status["Status"], status["Reason"]) == ("Revoked", 1)
    after = assert_certificate(lab, admin_api, namespace, "leaked-tls", [host])
    new_serial, new_key = _serial_and_key(after)
    assert new_serial != old_serial and new_key != old_key
    assert _pebble_status(lab, new_serial)["Status"] == "Valid"


def test_revoke_with_the_account_and_no_renew(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: RunCli
) -> None:
    _, before = _issued(lab, admin_api, namespace, cli, "retired")
    serial, _ = _serial_and_key(before)
    run = cli("revoke", f"{namespace}/retired-tls", "--reason", "cessationOfOperation",
                     "--no-renew")
    assert run.code == 0, run
    assert "signed with the account" in run.out
    status = _pebble_status(lab, serial)
    assert (status["Status"], status["Reason"]) == ("Revoked", 5)
    kept = read_secret(admin_api, namespace, "retired-tls")
    assert kept.data["tls.crt"] == before.data["tls.crt"]  # --no-renew: left in place
    again = cli("revoke", f"{namespace}/retired-tls", "--no-renew")
    assert again.code == 1 and "alreadyRevoked" in again.out
