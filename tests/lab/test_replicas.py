"""Several controller replicas against the real lab: exactly one orders and tokens are shared,
a SIGTERM is a clean stop (the leader's shared routing Service goes with it), a successor
continues the order of a leader killed mid-order."""

from __future__ import annotations

import base64
import functools
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs
from certbotk8s.core.state.records import ORDER_URL

from .conftest import ROOT, Lab, read_secret, verify_chain
from .controllers import ControllerProcess, cert_labels, wait_for
from .records_view import record_of
from .test_controller import Starter, _core, _ingress, _sans, controllers

__all__ = ["controllers"]

pytestmark = pytest.mark.lab


def test_two_controllers_exactly_one_orders_and_tokens_are_shared(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    # A answers Pebble on the HTTP-01 port; B listens elsewhere. Whichever leads, every token
    # must reach Pebble through A: tokens travel through the shared Secret.
    a = controllers("replica-a")
    b = controllers("replica-b", http01_port=lab.http01_port + 1)
    a.wait_ready()
    b.wait_ready()
    wait_for(lambda: a.is_leader() or b.is_leader(), 10, "a leader")
    hosts = [lab.host(f"pair{i}") for i in range(3)]
    for i, host in enumerate(hosts):
        _ingress(admin_api, namespace, f"pair{i}", [host])
    for i in range(3):
        name = f"pair{i}-tls"
        wait_for(functools.partial(read_secret, admin_api, namespace, name), 20, name)
    leaders = [c for c in (a, b) if c.is_leader()]
    assert len(leaders) == 1
    follower = b if leaders[0] is a else a

    assert leaders[0].acme("newOrder") >= 3
    assert follower.acme("newOrder") == 0

    # A refused source: both replicas see it (each exports its Ready False series), only the
    # leader posts the Warning Event.
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.create_namespaced_ingress(namespace, {
        "metadata": {"name": "refused-pair", "annotations": {
            "certbotk8s.io/enabled": "true", "certbotk8s.io/key-type": "dsa-1024"}},
        "spec": {"tls": [{"hosts": [lab.host("refused")], "secretName": "refused-pair-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    def saw_refusal(ctl: ControllerProcess) -> bool:
        return ctl.value("certbotk8s_certificate_ready_status", condition="False",
                         **cert_labels(namespace, "refused-pair", "")) == 1

    for ctl in (leaders[0], follower):
        wait_for(functools.partial(saw_refusal, ctl), 15, f"{ctl.identity} saw the refusal")
    events = _core(admin_api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=refused-pair").items
    assert [e.reason for e in events] == ["InvalidAnnotation"]
    assert {e.reporting_instance for e in events} == {leaders[0].identity}
    for ctl in (follower, leaders[0]):
        assert ctl.stop() == 0  # SIGTERM is a clean stop


def test_sigkill_mid_order_successor_continues_the_same_order(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    # B leads alone and its self-check cannot succeed (nobody serves the HTTP-01 port yet), so
    # its order stays pending; it is killed there. A takes over and must finish that order.
    b = controllers("doomed", http01_port=lab.http01_port + 1, selfCheck=True)
    b.wait_leading()
    host = lab.host("takeover")
    _ingress(admin_api, namespace, "takeover", [host])

    def recorded() -> str | None:  # the order in flight, from the certificate records
        return record_of(admin_api, namespace, "takeover-tls").get(ORDER_URL)

    networking: Any = k8s.NetworkingV1Api(admin_api)

    def routes() -> list[str]:
        # routeNamespace: source (the default): next to the Ingress
        listed = networking.list_namespaced_ingress(
            namespace, label_selector="certbotk8s.io/role=http01-route")
        return [i.metadata.name for i in listed.items
                if host in [r.host for r in (i.spec.rules or [])]]

    # (written behind: the entry waits 3 s for the order's end, then the next 5 s flush)
    order_url = wait_for(recorded, 30, "the in-flight order record")
    # The order is recorded before its challenges are presented: kill only once B's routing
    # exists, so the successor really has a dead leader's routing to sweep.
    wait_for(routes, 15, "the leader's HTTP-01 routing")
    b.kill()  # SIGKILL: no clean-up, no lease release
    assert read_secret(admin_api, namespace, "takeover-tls") is None
    assert routes(), "the killed leader's HTTP-01 routing is still there"

    a = controllers("successor")
    a.wait_ready()
    secret = wait_for(lambda: read_secret(admin_api, namespace, "takeover-tls"), 30,
                      "the Secret from the successor")
    verify_chain(base64.b64decode(secret.data["tls.crt"]), lab.roots())
    assert _sans(secret) == (host,)
    # The certificate came from B's order (Pebble logs which order issued which serial).
    serial = certs.certificate_info(base64.b64decode(secret.data["tls.crt"])).serial
    order_id = order_url.rstrip("/").rsplit("/", 1)[-1]
    pebble_log = (ROOT / ".lab" / "logs" / "pebble.log").read_text()
    issued = [line for line in pebble_log.splitlines() if f"for order {order_id}" in line
              and "Issued certificate serial" in line]
    assert issued and issued[0].split("serial ")[1].split()[0].lstrip("0") == serial.lstrip("0")
    # (the new certificate's record waits up to 10 s for its ARI moment, then a 5 s flush)
    wait_for(lambda: recorded() is None, 20, "the in-flight record cleared")
    assert routes() == []  # swept by the new leader, then published and removed for the order


def test_http01_orders_of_a_namespace_share_one_service_removed_when_the_leader_stops(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    """routeNamespace source (the lab's config): the controller's orders in one namespace
    route through one ExternalName Service, made once, kept between orders (no write per
    order), and removed with everything else of ours when the leader stops."""
    ctl = controllers("sharing").wait_leading()
    uids = set()
    for name in ("share-a", "share-b"):
        _ingress(admin_api, namespace, name, [lab.host(name)])
        wait_for(functools.partial(read_secret, admin_api, namespace, f"{name}-tls"), 15, name)
        services = _core(admin_api).list_namespaced_service(
            namespace, label_selector="certbotk8s.io/role=http01-route").items
        assert [s.spec.type for s in services] == ["ExternalName"]
        uids.add(services[0].metadata.uid)
    assert len(uids) == 1  # the second order used the Service the first one made
    networking: Any = k8s.NetworkingV1Api(admin_api)
    wait_for(lambda: not networking.list_namespaced_ingress(
        namespace, label_selector="certbotk8s.io/role=http01-route").items, 10,
        "each order's routing Ingress removed")
    assert ctl.stop() == 0
    assert _core(admin_api).list_namespaced_service(
        namespace, label_selector="certbotk8s.io/role=http01-route").items == []
