"""One controller against the real lab, shared by this module's tests: watches, re-issue on
change, /metrics values, the renew command through it (several replicas: test_replicas.py; an API
server restart under a running controller: test_kube_faults.py)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs

from .conftest import ROOT, Lab, read_secret, verify_chain
from .controllers import (
    ControllerProcess,
    cert_labels,
    controller_config,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.lab


Starter = Callable[..., ControllerProcess]


@pytest.fixture
def controllers(lab: Lab, controller_api: ApiClient, tmp_path: Path) -> Iterator[Starter]:
    """Start controllers sharing one fresh Lease; all stopped at the end of the test."""
    lease = f"test-{uuid.uuid4().hex[:8]}"
    started: list[ControllerProcess] = []
    ports = iter(range(19100 + os.getpid() % 500, 19700))

    def start(identity: str, http01_port: int | None = None, **http01: object
              ) -> ControllerProcess:
        settings: dict[str, object] = dict(http01)
        if http01_port is not None:
            settings["port"] = http01_port
        config = controller_config(lab, tmp_path, identity, **settings)
        proc = ControllerProcess(lab, config, next(ports), lease, identity, tmp_path).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def solo(lab: Lab, controller_api: ApiClient,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """One controller with the lab's config, leading on its own Lease, for every test of this
    module (each works in a namespace of its own); several replicas: test_replicas.py."""
    directory = tmp_path_factory.mktemp("solo")
    ctl = ControllerProcess(lab, controller_config(lab, directory, "solo"), free_port(),
                            f"test-{uuid.uuid4().hex[:8]}", "solo", directory).start()
    try:
        yield ctl.wait_leading()
    finally:
        ctl.stop()


def _core(api: ApiClient) -> Any:
    return k8s.CoreV1Api(api)


def _ingress(api: ApiClient, namespace: str, name: str, hosts: list[str]) -> None:
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": {"certbotk8s.io/enabled": "true"}},
            "spec": {"tls": [{"hosts": hosts, "secretName": f"{name}-tls"}],
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}
    networking: Any = k8s.NetworkingV1Api(api)
    networking.create_namespaced_ingress(namespace, body)


def _sans(secret: Any) -> tuple[str, ...]:
    return certs.certificate_info(base64.b64decode(secret.data["tls.crt"])).sans


def test_sources_created_changed_and_deleted_while_running(
    lab: Lab, admin_api: ApiClient, namespace: str, solo: ControllerProcess
) -> None:
    ctl = solo
    first = lab.host("live")
    _ingress(admin_api, namespace, "live", [first])
    secret = wait_for(lambda: read_secret(admin_api, namespace, "live-tls"), 15, "first Secret")
    verify_chain(base64.b64decode(secret.data["tls.crt"]), lab.roots())
    assert _sans(secret) == (first,)

    # hosts added: re-issued with both names
    second = lab.host("live2")
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.patch_namespaced_ingress("live", namespace, {"spec": {"tls": [
        {"hosts": [first, second], "secretName": "live-tls"}]}})
    def reissued() -> Any:
        current = read_secret(admin_api, namespace, "live-tls")
        return current if current is not None and len(_sans(current)) == 2 else None

    renewed = wait_for(reissued, 15, "re-issued Secret")
    assert _sans(renewed) == tuple(sorted((first, second)))

    # scheduled: the metrics know when it renews
    wait_for(lambda: ctl.value("certbotk8s_certificate_renewal_timestamp_seconds",
                               **cert_labels(namespace, "live-tls", "pebble")), 5,
             "renewal metric")

    # deleted: the Secret stays, its schedule and metrics go
    networking.delete_namespaced_ingress("live", namespace)
    wait_for(lambda: ctl.value("certbotk8s_certificate_renewal_timestamp_seconds",
                               **cert_labels(namespace, "live-tls", "pebble")) is None,
             10, "schedule removed")
    kept = read_secret(admin_api, namespace, "live-tls")
    assert kept is not None and _sans(kept) == _sans(renewed)


def test_metrics_report_certificates_and_acme_traffic(
    lab: Lab, admin_api: ApiClient, namespace: str, solo: ControllerProcess
) -> None:
    ctl = solo
    _ingress(admin_api, namespace, "seen", [lab.host("seen")])
    secret = wait_for(lambda: read_secret(admin_api, namespace, "seen-tls"), 15, "Secret")
    info = certs.certificate_info(base64.b64decode(secret.data["tls.crt"]))
    cert = cert_labels(namespace, "seen-tls", "pebble")
    expiry = wait_for(lambda: ctl.value("certbotk8s_certificate_expiration_timestamp_seconds",
                                        **cert), 5, "expiry")
    assert expiry == info.not_after.timestamp()
    wait_for(lambda: ctl.value("certbotk8s_certificate_ready_status", condition="True",
                               **cert) == 1, 5, "Ready True")
    assert ctl.value("certbotk8s_certificate_ready_status", condition="False", **cert) == 0
    assert ctl.value("certbotk8s_certificate_failed_attempts", **cert) == 0
    renewal = ctl.value("certbotk8s_certificate_renewal_timestamp_seconds", **cert)
    assert renewal is not None and info.not_before.timestamp() < renewal < expiry
    metrics = ctl.metrics()
    assert metrics[("certbotk8s_leader", ())] == 1
    assert metrics[("certbotk8s_managed_certificates", ())] >= 1
    assert metrics[("certbotk8s_orders_in_flight", ())] == 0
    assert any(name == "certbotk8s_acme_requests_total" and ("endpoint", "finalize") in labels
               and ("issuer", "pebble") in labels for name, labels in metrics)
    assert any(name == "certbotk8s_challenges_total" and ("outcome", "success") in labels
               for name, labels in metrics)
    assert ctl.get("/healthz")[0] == 200


def test_failing_first_issuance_and_refused_source_have_ready_false(
    lab: Lab, admin_api: ApiClient, namespace: str, solo: ControllerProcess
) -> None:
    """No Secret ever appears, yet both have a series an alert can fire on."""
    ctl = solo
    # The lab's Pebble refuses this name (domainBlocklist): every attempt fails.
    _ingress(admin_api, namespace, "blocked", [lab.blocked_host()])
    cert = cert_labels(namespace, "blocked-tls", "pebble")
    wait_for(lambda: ctl.value("certbotk8s_certificate_ready_status", condition="False",
                               **cert) == 1, 15, "Ready False after the failed attempt")
    # Shown after the first failure, not after the retries (next one in about a minute).
    assert ctl.value("certbotk8s_certificate_failed_attempts", **cert) == 1
    assert ctl.value("certbotk8s_certificate_ready_status", condition="Unknown", **cert) == 0
    assert ctl.value("certbotk8s_certificate_expiration_timestamp_seconds", **cert) is None
    retry = ctl.value("certbotk8s_certificate_renewal_timestamp_seconds", **cert)
    assert retry is not None and retry > time.time()
    # A refused source (invalid annotation) has a series too, named after the source.
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.create_namespaced_ingress(namespace, {
        "metadata": {"name": "refused", "annotations": {
            "certbotk8s.io/enabled": "true", "certbotk8s.io/key-type": "dsa-1024"}},
        "spec": {"tls": [{"hosts": [lab.host("refused")], "secretName": "refused-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    wait_for(lambda: ctl.value("certbotk8s_certificate_ready_status", condition="False",
                               **cert_labels(namespace, "refused", "")) == 1, 15,
             "refused source series")
    assert read_secret(admin_api, namespace, "blocked-tls") is None


def test_renew_command_goes_through_the_running_controller(
    lab: Lab, admin_api: ApiClient, namespace: str, solo: ControllerProcess
) -> None:
    ctl = solo
    _ingress(admin_api, namespace, "asked", [lab.host("asked")])
    first = wait_for(lambda: read_secret(admin_api, namespace, "asked-tls"), 15, "Secret")
    env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
               CERTBOTK8S_CONFIG=str(ctl.config))
    run = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "renew",
                          f"{namespace}/asked-tls", "--lease-name", ctl.lease, "--timeout", "60"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"asked the controller (solo holds Lease {ctl.lease})" in run.stdout
    assert f"{namespace}/asked-tls: renewed by the controller" in run.stdout
    second = read_secret(admin_api, namespace, "asked-tls")
    assert second.data["tls.crt"] != first.data["tls.crt"]
    assert second.data["tls.key"] != first.data["tls.key"]
    # The controller's own Event says why it renewed.
    events = _core(admin_api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=asked,reason=Renewed").items
    assert any("renewal requested at" in e.message for e in events), [e.message for e in events]

