"""A running controller's Secret write answered a real 409 while its order was in flight: the
source changed meanwhile, or another certbotk8s writer stored a newer certificate (kept)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.kube.records import KubeRecordStore
from certbotk8s.adapters.kube.secrets import KubeSecretStore
from certbotk8s.core.model import ChallengeType, IssuedCertificate, SecretRef
from certbotk8s.core.pki import certs
from certbotk8s.core.state import secret_meta

from .conftest import EngineFactory, Lab, read_secret
from .controllers import (
    ControllerProcess,
    cert_labels,
    controller_config,
    free_port,
    wait_for,
)
from .records_view import CONTROLLER_NAMESPACE, record_of
from .tcpproxy import TcpProxy
from .test_controller import _ingress
from .test_kube_faults import _certificates_written, _orders_for, _serial

pytestmark = pytest.mark.lab


def _sans(secret: Any) -> set[str]:
    return set(certs.certificate_info(base64.b64decode(secret.data["tls.crt"])).sans)


def _changes(api: ApiClient, namespace: str, since: str) -> list[tuple[str, bool]]:
    """Every change of web-tls after `since`, replayed by the API server's watch: (event type,
    whether that version holds both tls.crt and tls.key)."""
    core: Any = k8s.CoreV1Api(api)
    raw = core.list_namespaced_secret(namespace, field_selector="metadata.name=web-tls",
                                      watch=True, resource_version=since, timeout_seconds=2,
                                      _preload_content=False)
    events = [json.loads(line) for line in raw.data.splitlines()]
    return [(e["type"], {"tls.crt", "tls.key"} <= set(e["object"].get("data") or {}))
            for e in events]


def _set_hosts(api: ApiClient, namespace: str, hosts: list[str]) -> None:
    networking: Any = k8s.NetworkingV1Api(api)
    networking.patch_namespaced_ingress("web", namespace, {"spec": {"tls": [
        {"hosts": hosts, "secretName": "web-tls"}]}})


def _gated_controller(lab: Lab, tmp_path: Path, gate: TcpProxy, name: str) -> ControllerProcess:
    """A controller whose HTTP-01 self-check goes through `gate`: with the gate closed, an order
    waits in its self-check (up to 10 s) after it read the Secret, until the test opens it."""
    config = controller_config(lab, tmp_path, name, selfCheckPort=gate.port)
    return ControllerProcess(lab, config, free_port(), f"test-{uuid.uuid4().hex[:8]}", name,
                             tmp_path).start()


def test_source_changed_while_the_order_was_in_flight_and_the_write_got_409(
    lab: Lab, admin_api: ApiClient, namespace: str, controller_api: ApiClient, tmp_path: Path
) -> None:
    first, second, third = lab.host("first"), lab.host("second"), lab.host("third")
    with TcpProxy(lab.http01_port) as gate:
        ctl = _gated_controller(lab, tmp_path, gate, "source-race")
        try:
            ctl.wait_leading()
            _ingress(admin_api, namespace, "web", [first])
            issued = wait_for(lambda: read_secret(admin_api, namespace, "web-tls"), 20,
                              "web-tls")
            gate.close()
            _set_hosts(admin_api, namespace, [first, second])
            wait_for(lambda: _orders_for(ctl, namespace, "web-tls") == 2, 20,
                     "the order for the second host set")
            # While that order is in flight: the source changes again, and another writer
            # touches the Secret, so the controller's write is answered 409.
            _set_hosts(admin_api, namespace, [first, second, third])
            core: Any = k8s.CoreV1Api(admin_api)
            core.patch_namespaced_secret("web-tls", namespace, {"metadata": {
                "labels": {"team": "payments"},
                "annotations": {"example.com/owner": "payments"}}})
            gate.open()
            final = wait_for(lambda: (lambda s: s if s is not None and _sans(s) == {
                first, second, third} else None)(read_secret(admin_api, namespace, "web-tls")),
                40, "web-tls covering the source's current hosts")
            assert _orders_for(ctl, namespace, "web-tls") == 3
        finally:
            ctl.stop()
    log = ctl.log_path.read_text(errors="replace")
    assert "the object has been modified" in log
    assert "still holds the certificate being replaced" in log  # the 409 path, not a luck
    assert "writing again on the current version" in log
    # Every change of the Secret replayed by the API server's watch: never deleted, each
    # version holds a complete certificate and key, and each certificate is written once: the
    # old one, the in-flight order's (two hosts), the current hosts'.
    changes = _changes(admin_api, namespace, issued.metadata.resource_version)
    assert changes and all(kind == "MODIFIED" and complete for kind, complete in changes)
    written = _certificates_written(admin_api, namespace, "web-tls",
                                    issued.metadata.resource_version)
    assert len(written) == 3 and written[0] == _serial(issued) and written[2] == _serial(final)
    # Each certificate write adds one entry to the issued-7d history (carried over the 409):
    # three, not four, so the in-flight order's certificate was not written a second time.
    assert len(final.metadata.annotations[secret_meta.ISSUANCE_HISTORY].split(",")) == 3
    # The other writer's label and annotation are kept.
    assert final.metadata.labels["team"] == "payments"
    assert final.metadata.annotations["example.com/owner"] == "payments"


def _issue_elsewhere(make_engine: EngineFactory, dns01_solver: DnsSolver,
                     hosts: tuple[str, ...]) -> IssuedCertificate:
    """A certificate for `hosts` from the same CA through another client (DNS-01): what a second
    certbotk8s writer (`renew --once`, another replica) would have ordered."""
    return make_engine().issue(
        OrderRequest(hosts=hosts, challenge=ChallengeType.DNS01, profile="default"),
        {ChallengeType.DNS01: dns01_solver})


def _write_as_certbotk8s(api: ApiClient, namespace: str, cert: IssuedCertificate,
                         at: datetime) -> str:
    """Store `cert` in web-tls the way another certbotk8s writer does (its annotations, the read
    resourceVersion, the issued-7d history extended in its record too); returns that history."""
    store = KubeSecretStore(api)
    current = store.read(namespace, "web-tls")
    assert current is not None
    info = cert.info
    annotations = {k: v for k, v in current.annotations.items()
                   if k.startswith("certbotk8s.io/") and k != secret_meta.RENEWAL_MOMENT}
    history = secret_meta.append_history(annotations.get(secret_meta.ISSUANCE_HISTORY), at, at)
    annotations.update({
        secret_meta.HOSTS: ",".join(info.sans), secret_meta.SERIAL: info.serial,
        secret_meta.NOT_BEFORE: secret_meta.format_time(info.not_before),
        secret_meta.NOT_AFTER: secret_meta.format_time(info.not_after),
        secret_meta.ARI_CERT_ID: info.ari_cert_id,
        secret_meta.ISSUED_AT: secret_meta.format_time(at),
        secret_meta.ISSUANCE_HISTORY: history})
    store.write_tls(namespace, "web-tls", cert.key_pem, cert.fullchain_pem,
                    dict(current.labels), annotations, current.resource_version)
    KubeRecordStore(api, CONTROLLER_NAMESPACE).save(
        {SecretRef(namespace, "web-tls"): annotations})
    return history


def test_a_newer_certificate_stored_by_another_writer_is_kept_not_overwritten(
    lab: Lab, admin_api: ApiClient, namespace: str, controller_api: ApiClient,
    make_engine: EngineFactory, dns01_solver: DnsSolver, tmp_path: Path
) -> None:
    first, second = lab.host("first"), lab.host("second")
    hosts = tuple(sorted((first, second)))
    # The other writer's certificate is ordered first, so only API calls fall in the window.
    # Its history entry is a second before it was issued: the history has whole seconds, and
    # ours must not merge with it.
    theirs_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    theirs = _issue_elsewhere(make_engine, dns01_solver, hosts)
    with TcpProxy(lab.http01_port) as gate:
        ctl = _gated_controller(lab, tmp_path, gate, "writer-race")
        try:
            ctl.wait_leading()
            _ingress(admin_api, namespace, "web", [first])
            issued = wait_for(lambda: read_secret(admin_api, namespace, "web-tls"), 20,
                              "web-tls")
            gate.close()
            _set_hosts(admin_api, namespace, [first, second])
            wait_for(lambda: _orders_for(ctl, namespace, "web-tls") == 2, 20,
                     "the controller's order for the new host set")
            # The controller read the Secret and its order waits: the other writer stores its
            # newer certificate for the same hosts now.
            their_history = _write_as_certbotk8s(admin_api, namespace, theirs,
                                                 theirs_at)
            gate.open()
            wait_for(lambda: ctl.value("certbotk8s_newer_certificate_kept_total") == 1, 30,
                     "the controller to keep the newer certificate")
            # The history patch is the last thing before the counter: its entry is there.
            kept = read_secret(admin_api, namespace, "web-tls")
        finally:
            ctl.stop()
    assert _serial(kept) == theirs.info.serial and _sans(kept) == set(hosts)
    log = ctl.log_path.read_text(errors="replace")
    assert "the object has been modified" in log  # a real 409 from the API server
    assert f"another writer stored a newer certificate (serial {theirs.info.serial}" in log
    ours = log.split("and ours (serial ", 1)[1].split(")", 1)[0]
    assert ours not in (theirs.info.serial, _serial(issued))
    # One order spent on the new host set, and no write of its certificate: the watch replays
    # (annotation writes on the original, then) theirs, never ours.
    assert _orders_for(ctl, namespace, "web-tls") == 2
    assert _certificates_written(admin_api, namespace, "web-tls",
                                 issued.metadata.resource_version) in (
        [theirs.info.serial], [_serial(issued), theirs.info.serial])
    # Our issuance (the CA counted it) is in the issued-7d history the budget reads (the
    # record, merged with the other writer's).
    history = record_of(admin_api, namespace, "web-tls")[secret_meta.ISSUANCE_HISTORY].split(",")
    assert history[:-1] == their_history.split(",") and len(history) == 3


def _ready(ctl: ControllerProcess, namespace: str) -> float | None:
    return ctl.value("certbotk8s_certificate_ready_status", condition="True",
                     **cert_labels(namespace, "web-tls", "pebble"))


def test_a_certificate_for_the_source_s_new_hosts_stored_meanwhile_is_kept(
    lab: Lab, admin_api: ApiClient, namespace: str, controller_api: ApiClient,
    make_engine: EngineFactory, dns01_solver: DnsSolver, tmp_path: Path
) -> None:
    first, second, third = lab.host("first"), lab.host("second"), lab.host("third")
    now_wanted = tuple(sorted((first, second, third)))
    theirs_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    theirs = _issue_elsewhere(make_engine, dns01_solver, now_wanted)
    with TcpProxy(lab.http01_port) as gate:
        ctl = _gated_controller(lab, tmp_path, gate, "moved-race")
        try:
            ctl.wait_leading()
            _ingress(admin_api, namespace, "web", [first])
            issued = wait_for(lambda: read_secret(admin_api, namespace, "web-tls"), 20,
                              "web-tls")
            gate.close()
            _set_hosts(admin_api, namespace, [first, second])
            wait_for(lambda: _orders_for(ctl, namespace, "web-tls") == 2, 20,
                     "the controller's order for the second host set")
            wait_for(lambda: _ready(ctl, namespace) == 0, 10, "Ready no more (hosts changed)")
            # While it is in flight the source moves on, and the other writer (which saw the
            # new hosts) stores a certificate for them.
            _set_hosts(admin_api, namespace, list(now_wanted))
            _write_as_certbotk8s(admin_api, namespace, theirs, theirs_at)
            # Ready again only once the controller's cache holds both the new hosts and that
            # certificate (for the old hosts the plan would renew: not Ready).
            wait_for(lambda: _ready(ctl, namespace) == 1, 10, "the controller to see both")
            gate.open()
            wait_for(lambda: ctl.value("certbotk8s_newer_certificate_kept_total") == 1, 30,
                     "the controller to keep the certificate for the current hosts")
            kept = read_secret(admin_api, namespace, "web-tls")
        finally:
            ctl.stop()
    assert _serial(kept) == theirs.info.serial and _sans(kept) == set(now_wanted)
    assert "the object has been modified" in ctl.log_path.read_text(errors="replace")
    # Ours (for the two hosts the source no longer wants) was not written, and no order was
    # placed again for the three hosts: theirs covers them.
    assert _orders_for(ctl, namespace, "web-tls") == 2
    assert _certificates_written(admin_api, namespace, "web-tls",
                                 issued.metadata.resource_version) in (
        [theirs.info.serial], [_serial(issued), theirs.info.serial])
