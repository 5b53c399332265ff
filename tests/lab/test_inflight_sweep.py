"""The leader drops in-flight order records no order will resume (namespace gone or being
deleted on the real API server, no source any more) and keeps the one an order may resume:
entries in the certificate records and in the Secret versions up to 0.1 kept them in."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import kubernetes.client as k8s
import pytest
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.inflight import InflightOrder, KubeInflightStore
from certbotk8s.adapters.kube.namespaces import KubeNamespaces
from certbotk8s.adapters.kube.records import KubeRecordStore
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state.inflight import NamespaceState
from certbotk8s.core.state.records import ORDER_HOSTS, ORDER_URL

from .conftest import Lab, read_secret
from .controllers import wait_for
from .records_view import record_of
from .test_controller import Starter, controllers
from .test_e2e_renew import Run, _ensure_namespace, _ingress, certbotk8s

pytestmark = pytest.mark.lab
__all__ = ["certbotk8s", "controllers"]

STORE = "certbotk8s-inflight-orders"


def _keys(api: ApiClient) -> set[str]:
    secret = read_secret(api, "certbotk8s", STORE)
    return set((secret.data or {}) if secret is not None else {})


def test_leader_drops_records_of_deleted_namespaces_and_gone_sources_only(
    lab: Lab, admin_api: ApiClient, controller_api: ApiClient, namespace: str,
    controllers: Starter, certbotk8s: Callable[..., Run],
) -> None:
    core: Any = k8s.CoreV1Api(admin_api)
    doomed = _ensure_namespace(admin_api, f"doomed-{uuid.uuid4().hex[:8]}")
    never = f"never-{uuid.uuid4().hex[:8]}"
    host = lab.host("kept")
    _ingress(admin_api, namespace, "kept", {"tls": [{"hosts": [host], "secretName": "kept-tls"}]})
    issued = certbotk8s("renew", "--once", "-n", namespace)
    assert issued.code == 0, issued  # up to date: the controller places no order for it
    store = KubeInflightStore(controller_api, "certbotk8s")  # as 0.1 kept them
    entries = {SecretRef(doomed, "site-tls"): ("site.example.com",),
               SecretRef(never, "x-tls"): ("x.example.com",),
               SecretRef(namespace, "kept-tls"): (host,)}
    for ref, hosts in entries.items():
        store.record(InflightOrder(ref, f"https://127.0.0.1:1/order/{ref.name}", hosts))
    # ... and as this version keeps them: in the certificate records
    records = KubeRecordStore(controller_api, "certbotk8s")
    records.save({SecretRef(namespace, "orphan-tls"): {
        ORDER_URL: "https://127.0.0.1:1/order/orphan", ORDER_HOSTS: "orphan.example.com"}})
    core.delete_namespace(doomed)
    # What this lab does (no namespace controller): the namespace stays, Terminating.
    namespaces = KubeNamespaces(controller_api)
    assert namespaces.state(doomed) is NamespaceState.TERMINATING
    assert namespaces.state(never) is NamespaceState.GONE
    assert namespaces.state(namespace) is NamespaceState.ACTIVE
    stale = {f"{doomed}_site-tls", f"{never}_x-tls"}
    kept = f"{namespace}_kept-tls"
    assert stale | {kept} <= _keys(admin_api)

    ctl = controllers("sweeper")
    ctl.wait_ready()
    wait_for(ctl.is_leader, 10, "leadership")
    wait_for(lambda: not (stale & _keys(admin_api)), 60, "the stale records removed")
    wait_for(lambda: not record_of(admin_api, namespace, "orphan-tls"), 15,
             "the stale entry of the certificate records removed")
    assert kept in _keys(admin_api)  # an order may still resume it
    value = (read_secret(admin_api, "certbotk8s", STORE).data or {})[kept]
    assert host in base64.b64decode(value).decode()  # untouched

    def summary() -> str | None:
        text = ctl.log_path.read_text(errors="replace")
        return text if "in-flight order records no order will resume" in text else None

    log = wait_for(summary, 10, "the sweep's summary line")
    assert f"{doomed}/site-tls removed from the record" in log
    assert f"namespace {doomed} is being deleted" in log
    assert f"namespace {never} no longer exists" in log
    assert f"no source asks for Secret {namespace}/orphan-tls any more" in log
    assert f"{namespace}/kept-tls removed" not in log


def test_a_source_in_a_namespace_being_deleted_gets_no_order(
    lab: Lab, admin_api: ApiClient, controller_api: ApiClient, namespace: str,
    controllers: Starter,
) -> None:
    core: Any = k8s.CoreV1Api(admin_api)
    doomed = _ensure_namespace(admin_api, f"doomed-{uuid.uuid4().hex[:8]}")
    _ingress(admin_api, doomed, "site",
             {"tls": [{"hosts": [lab.host("doomed")], "secretName": "site-tls"}]})
    core.delete_namespace(doomed)  # stays Terminating here (no namespace controller)
    ctl = controllers("terminating")
    ctl.wait_ready()
    wait_for(ctl.is_leader, 10, "leadership")

    def skipped() -> bool:
        return (f"{doomed}/site-tls: namespace {doomed} is being deleted; no order"
                in ctl.log_path.read_text(errors="replace"))

    wait_for(skipped, 30, "the source in the Terminating namespace passed over")
    # The controller orders elsewhere as usual: the next source gets its certificate.
    host = lab.host("alive")
    _ingress(admin_api, namespace, "alive",
             {"tls": [{"hosts": [host], "secretName": "alive-tls"}]})
    wait_for(lambda: read_secret(admin_api, namespace, "alive-tls"), 30, "alive-tls")
    assert f"{doomed}/site-tls" not in ctl.orders()  # no certificate nobody can store
