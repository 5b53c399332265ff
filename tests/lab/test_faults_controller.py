"""Faults under a running controller: the CA forgets its account, the CA is down, the leader is
cut off from the API server (a proxy the test closes) while a second replica waits."""

from __future__ import annotations

import base64
import functools
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs
from certbotk8s.core.state.records import ORDER_URL

from .conftest import ROOT, Lab, read_secret, verify_chain
from .controllers import (
    ControllerProcess,
    api_port,
    controller_config,
    free_port,
    through_proxy,
    wait_for,
)
from .records_view import record_of
from .tcpproxy import TcpProxy
from .test_controller import Starter, _ingress, controllers  # and its fixture
from .test_faults import fault

__all__ = ["controllers"]

pytestmark = pytest.mark.lab


def _events(api: ApiClient, namespace: str, reason: str, name: str | None = None) -> list[Any]:
    selector = f"involvedObject.name={name}" if name else None
    listed = k8s.CoreV1Api(api).list_namespaced_event(namespace, field_selector=selector)
    return [e for e in listed.items if e.reason == reason]


def test_controller_recovers_from_a_ca_that_forgot_its_account(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    ctl = controllers("forgotten")
    ctl.wait_leading()
    _ingress(admin_api, namespace, "first", [lab.host("first")])
    wait_for(lambda: read_secret(admin_api, namespace, "first-tls"), 15, "first-tls")
    # (The stored account may have been lost by an earlier restart already: count from here.)
    before = ctl.value("certbotk8s_acme_account_recoveries_total", issuer="pebble",
                       outcome="registered") or 0
    fault("restart", "pebble")  # forgets the account the controller stored
    _ingress(admin_api, namespace, "second", [lab.host("second")])
    # One order's time: no backoff after accountDoesNotExist, the order is retried at once.
    secret = wait_for(lambda: read_secret(admin_api, namespace, "second-tls"), 10,
                      "second-tls after the CA restart")
    verify_chain(base64.b64decode(secret.data["tls.crt"]), lab.roots())
    events = wait_for(lambda: _events(admin_api, "certbotk8s", "AccountRegisteredAgain"), 5,
                      "the AccountRegisteredAgain Event")
    assert "registered again with the stored key" in events[-1].message
    assert ctl.value("certbotk8s_acme_account_recoveries_total", issuer="pebble",
                     outcome="registered") == before + 1
    assert ctl.value("certbotk8s_acme_account_ready", issuer="pebble") == 1
    assert not _events(admin_api, namespace, "IssuanceFailed", "second")


def test_ca_down_one_probe_decides_and_all_due_work_resumes(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    ctl = controllers("patient")
    ctl.wait_leading()
    _ingress(admin_api, namespace, "early", [lab.host("early")])
    wait_for(lambda: read_secret(admin_api, namespace, "early-tls"), 15, "early-tls")
    # The controller also serves what earlier tests left in the shared lab: count from a quiet
    # moment (whatever failed there waits in backoff for a minute at least).
    wait_for(lambda: ctl.value("certbotk8s_orders_in_flight") == 0, 20, "no order running")
    tried_before = ctl.acme("newOrder")
    placed_before = ctl.acme("newOrder", "201")
    fault("stop", "pebble")
    try:
        names = [f"down{i}" for i in range(6)]
        for name in names:
            _ingress(admin_api, namespace, name, [lab.host(name)])
        wait_for(lambda: ctl.value("certbotk8s_acme_ca_up", issuer="pebble") == 0, 20,
                 "the CA marked down")
        wait_for(lambda: ctl.value("certbotk8s_acme_ca_waiting_certificates",
                                   issuer="pebble") == len(names), 20, "all waiting")
        waiting = wait_for(lambda: _events(admin_api, namespace, "CaUnavailable"), 10,
                           "CaUnavailable Events")
        assert "connection refused" in waiting[0].message
        tried = ctl.acme("newOrder") - tried_before
        # No storm: the orders that met the CA down (each tried twice at most), not more.
        assert tried <= 2 * len(names)
        assert read_secret(admin_api, namespace, "early-tls") is not None  # still serving
    finally:
        fault("start", "pebble")
    # How soon is bench/faults.py's figure (pebble-down). Here: they come without the 1-minute
    # first backoff a counted failure would wait (the bound only ends a broken run).
    for name in names:
        wait_for(functools.partial(read_secret, admin_api, namespace, f"{name}-tls"), 50, name)
    # One order each, none extra.
    assert ctl.acme("newOrder", "201") - placed_before == len(names)
    assert ctl.value("certbotk8s_acme_ca_up", issuer="pebble") == 1


def test_leader_cut_off_from_the_api_server_leaves_its_orders_to_the_next(
    lab: Lab, admin_api: ApiClient, namespace: str, tmp_path: Path
) -> None:
    lease = f"test-{uuid.uuid4().hex[:8]}"
    with TcpProxy(api_port(lab)) as proxy:
        # A reaches the API only through the proxy; its self-check looks where nobody answers,
        # so its orders stay pending (placed, challenges presented) until it is cut off.
        cut_config = controller_config(lab, tmp_path, "cut", port=lab.http01_port + 1,
                                       selfCheck=True, selfCheckPort=lab.http01_port + 2)
        a = ControllerProcess(through_proxy(lab, proxy, tmp_path), cut_config, free_port(),
                              lease, "cut-off", tmp_path).start()
        next_config = controller_config(lab, tmp_path, "next", selfCheck=True,
                                        selfCheckPort=lab.http01_port)
        b = ControllerProcess(lab, next_config, free_port(), lease, "successor", tmp_path)
        try:
            a.wait_leading()
            b.start().wait_ready()
            names = [f"cut{i}" for i in range(3)]
            hosts = [lab.host(name) for name in names]
            for name, host in zip(names, hosts, strict=True):
                _ingress(admin_api, namespace, name, [host])
            # (written behind: 3 s waiting for the orders' end, then the next 5 s flush)
            orders = wait_for(lambda: _recorded(admin_api, namespace, names), 30,
                              "A's orders recorded")
            # Challenges presented (tokens and routing through the API): A is in its self-check.
            wait_for(lambda: len(_routes(admin_api, hosts)) >= len(names), 20,
                     "A's HTTP-01 routing")
            proxy.close()
            cut = time.monotonic()
            for name in names:
                wait_for(functools.partial(read_secret, admin_api, namespace, f"{name}-tls"),
                         40, name)
            # B finished A's very orders: no second order for any of these certificates (the
            # controllers also serve what earlier tests left in the shared lab, so the order
            # counters are not ours alone; the in-flight records and Pebble's log are).
            resumed = b.log_path.read_text(errors="replace")
            assert f"{namespace}/cut" not in "".join(
                line for line in resumed.splitlines() if "placing a new one" in line)
            pebble_log = (ROOT / ".lab" / "logs" / "pebble.log").read_text()
            for name in names:
                secret = read_secret(admin_api, namespace, f"{name}-tls")
                serial = certs.certificate_info(base64.b64decode(secret.data["tls.crt"])).serial
                order_id = orders[name].rstrip("/").rsplit("/", 1)[-1]
                assert any(f"for order {order_id}" in line and serial.lstrip("0") in line
                           for line in pebble_log.splitlines()), name
                # Events are posted from the controller's queue: wait for it, then exactly one
                wait_for(functools.partial(_events, admin_api, namespace, "Issued", name), 20,
                         f"Issued Event for {name}")
                assert len(_events(admin_api, namespace, "Issued", name)) == 1
            # A gave up before B took over: A never answered a challenge, holds no order, and
            # logged the abandonment before B logged its leadership.
            assert a.acme("challenge") == 0
            assert a.value("certbotk8s_orders_in_flight") == 0
            assert a.value("certbotk8s_leader") == 0
            # The cause, while A is still cut off: on the Lease, B's Event names whom it took
            # over from and why; A's metrics and /readyz say it stepped down and cannot reach
            # the API server.
            took = wait_for(lambda: [
                e for e in _events(admin_api, "certbotk8s", "LeaderElection", lease)
                if e.message == "successor became the leader: took over from cut-off, "
                "whose Lease was not renewed for 3s"], 20, "B's LeaderElection Event")
            assert took
            assert a.value("certbotk8s_leadership_lost_total") == 1
            assert a.value("certbotk8s_kube_api_reachable") == 0
            assert "API server: unreachable for" in a.get("/readyz")[1]
            abandoned = _first_log_time(a.log_path, "left to the next leader")
            leading = _first_log_time(b.log_path, "is the leader now")
            assert abandoned is not None and leading is not None and abandoned < leading
            assert time.monotonic() - cut < 40
        finally:
            a.stop()
            b.stop()


def _routes(api: ApiClient, hosts: list[str]) -> list[str]:
    """The temporary HTTP-01 routing Ingresses published for `hosts` (next to their source
    Ingresses: routeNamespace source, the default)."""
    networking: Any = k8s.NetworkingV1Api(api)
    listed = networking.list_ingress_for_all_namespaces(
        label_selector="certbotk8s.io/role=http01-route")
    return [i.metadata.name for i in listed.items
            if {r.host for r in (i.spec.rules or [])} & set(hosts)]


def _recorded(api: ApiClient, namespace: str, names: list[str]) -> dict[str, str] | None:
    """The order URL in flight of each `<name>-tls`, from the certificate records."""
    found = {}
    for name in names:
        url = record_of(api, namespace, f"{name}-tls").get(ORDER_URL)
        if not url:
            return None
        found[name] = url
    return found


def _first_log_time(path: Path, text: str) -> datetime | None:
    for line in path.read_text(errors="replace").splitlines():
        if text in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return None
