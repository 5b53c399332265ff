"""Outages of the CA or the DNS server (lab/fault stops them by PID): no counted backoff, one
probe or one check decides, a clear cause per certificate, work resumes when they are back."""

from __future__ import annotations

import base64
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
from kubernetes.client import ApiClient

from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider
from certbotk8s.adapters.dns.webhook import WebhookProvider
from certbotk8s.adapters.http01.responder import lookup_outage
from certbotk8s.adapters.kube.records import KubeRecordStore
from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError
from certbotk8s.core.ports import TxtRecord
from certbotk8s.core.state import secret_meta
from tests.lab.webhook_stub import QuietHandler

from .conftest import Lab, read_secret, verify_chain
from .controllers import controller_config, wait_for
from .records_view import CONTROLLER_NAMESPACE
from .test_controller import Starter, controllers
from .test_e2e_renew import Run, _ingress, _rows, certbotk8s, events_for
from .test_faults import fault

pytestmark = pytest.mark.lab
__all__ = ["certbotk8s", "controllers"]

DNS01 = {"certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "dns-01"}


@pytest.fixture
def bind_stopped() -> Iterator[None]:
    """The lab's BIND (update server, resolver and authoritative server) stopped; started
    again at the end whatever happened."""
    fault("stop", "named")
    try:
        yield
    finally:
        fault("start", "named")


def _failures(api: ApiClient, namespace: str) -> dict[str, Any]:
    """The counted failures (backoff) in the controller's records of Secrets in `namespace`."""
    records = KubeRecordStore(api, CONTROLLER_NAMESPACE).load()
    return {str(ref): record[secret_meta.FAILURES] for ref, record in records.items()
            if ref.namespace == namespace and record.get(secret_meta.FAILURES, "0") != "0"}


def _site(api: ApiClient, namespace: str, name: str, host: str,
          annotations: dict[str, str] | None = None) -> None:
    _ingress(api, namespace, name, {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}]},
             annotations=annotations or {"certbotk8s.io/enabled": "true"})


# --- the RFC 2136 adapter: no answer is an outage, an answer is not --------------------------


def test_update_server_that_is_down_is_an_outage_and_the_probe_sees_it_back(lab: Lab) -> None:
    provider = Rfc2136Provider(lab.rfc2136(timeout=2))
    record = TxtRecord(f"_acme-challenge.{lab.host('down')}", lab["DNS_ZONE"], "v")
    assert provider.probe() is None
    fault("stop", "named")
    try:
        with pytest.raises(DnsServerUnreachable) as info:
            provider.present(record)
        assert info.value.server == lab["DNS_SERVER"]
        assert lab["DNS_SERVER"] in str(info.value) and "ConnectionRefusedError" in str(info.value)
        probe = provider.probe()
        assert probe is not None and lab["DNS_SERVER"] in probe
    finally:
        fault("start", "named")
    assert provider.probe() is None
    provider.present(record)
    provider.cleanup(record)


def test_lookup_outage_tells_an_answer_from_no_answer(lab: Lab) -> None:
    resolver = lab["DNS_SERVER"]
    missing = f"nowhere-{uuid.uuid4().hex[:8]}.{lab['DNS_ZONE']}"
    assert lookup_outage(missing, resolver) is None  # NXDOMAIN is an answer
    fault("stop", "named")
    try:
        reason = lookup_outage(missing, resolver, timeout=1.0)
    finally:
        fault("start", "named")
    assert reason is not None and missing in reason and resolver in reason


def test_refused_update_is_an_answer_not_an_outage(lab: Lab) -> None:
    provider = Rfc2136Provider(lab.rfc2136())
    zone = lab["DNS_ZONE_READONLY"]
    record = TxtRecord(f"_acme-challenge.ro-{uuid.uuid4().hex[:8]}.{zone}", zone, "v")
    with pytest.raises(DnsSolverError) as info:
        provider.present(record)
    assert not isinstance(info.value, DnsServerUnreachable)
    assert "refused: REFUSED" in str(info.value)


class _Busy(QuietHandler):
    """A webhook that answers, but only 503 (and 405 to the probe's GET)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(503)

    def do_GET(self) -> None:
        self._answer(405)


def test_webhook_that_gives_no_answer_is_an_outage_and_one_that_answers_is_not() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    url = f"http://127.0.0.1:{server.server_address[1]}/acme"
    record = TxtRecord("_acme-challenge.x.example", "example", "v")
    provider = WebhookProvider(url, "token-xyz", timeout=2, retries=1)
    server.server_close()  # nobody listens: connection refused
    with pytest.raises(DnsServerUnreachable) as info:
        provider.present(record)
    assert info.value.server == url and "token-xyz" not in str(info.value)
    assert provider.probe() is not None
    server = ThreadingHTTPServer(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert provider.probe() is None  # a 405 is an answer
        with pytest.raises(DnsSolverError) as refused:
            provider.present(record)
        assert not isinstance(refused.value, DnsServerUnreachable)  # 503s: counted failures
        assert "HTTP 503" in str(refused.value)
    finally:
        server.shutdown()
        server.server_close()


# --- the controller: DNS server down ---------------------------------------------------------


def _orders_placed(log_path: Path, namespace: str) -> int:
    return sum(1 for line in log_path.read_text(errors="replace").splitlines()
               if f" {namespace}/" in line and ": new order " in line)


def test_dns_server_down_holds_dns01_orders_without_backoff_and_resumes_them(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter,
    certbotk8s: Callable[..., Run],
) -> None:
    ctl = controllers("dns-patient")
    ctl.wait_ready()
    wait_for(ctl.is_leader, 10, "leadership")
    _site(admin_api, namespace, "early", lab.host("early"), DNS01)
    wait_for(lambda: read_secret(admin_api, namespace, "early-tls"), 30, "early-tls")
    names = [f"dns{i}" for i in range(4)]
    before = _orders_placed(ctl.log_path, namespace)  # early's
    fault("stop", "named")
    try:
        for name in names:
            _site(admin_api, namespace, name, lab.host(name), DNS01)
        wait_for(lambda: ctl.value("certbotk8s_dns_provider_up", provider="lab-bind") == 0, 60,
                 "the DNS provider marked down")
        wait_for(lambda: (ctl.value("certbotk8s_dns_waiting_certificates",
                                    provider="lab-bind") or 0) >= len(names), 60,
                 "every certificate waiting")
        held = wait_for(lambda: {e[0] for e in _warnings(admin_api, namespace, names)
                                 if e[1] == "DnsUnavailable"} >= set(names), 30,
                        "a DnsUnavailable Event on every source")
        assert held
        events = _warnings(admin_api, namespace, names)
        message = next(m for _, r, m in events if r == "DnsUnavailable")
        assert "waiting for the DNS provider lab-bind" in message
        assert lab["DNS_SERVER"] in message  # names the server that does not answer
        assert not [e for e in events if e[1] == "IssuanceFailed"]
        assert _failures(admin_api, namespace) == {}  # no counted backoff
        during = _orders_placed(ctl.log_path, namespace) - before
        assert during <= len(names)  # no storm: at most the orders that met it down
        assert read_secret(admin_api, namespace, "early-tls") is not None  # still serving
        # as a person (the controller's ServiceAccount may not list Events; a wait is no
        # failure, so its records hold no error either)
        status = certbotk8s("status", "-n", namespace, "-o", "json", person=True)
        rows = {r["secret"]: r for r in _rows(status)}
        for name in names:  # `status` names the cause while it lasts
            assert rows[f"{namespace}/{name}-tls"]["last_error"].startswith(
                "DnsUnavailable: waiting for the DNS provider lab-bind"), rows
    finally:
        fault("start", "named")
    for name in names:
        secret = wait_for(functools.partial(read_secret, admin_api, namespace, f"{name}-tls"),
                          60, name)
        verify_chain(base64.b64decode(secret.data["tls.crt"]), lab.roots())
    # Orders that met the outage were continued, not placed again: one order per certificate.
    assert _orders_placed(ctl.log_path, namespace) - before == len(names)
    wait_for(lambda: ctl.value("certbotk8s_dns_provider_up", provider="lab-bind") == 1, 10,
             "the DNS provider up again")
    assert _failures(admin_api, namespace) == {}


def test_http01_validation_the_ca_failed_while_dns_is_down_waits_without_backoff(
    lab: Lab, admin_api: ApiClient, namespace: str, controllers: Starter
) -> None:
    # No self-check: the orders go to the CA with BIND down, and Pebble (which resolves the
    # hosts through BIND) fails the validation; the controller's own lookup finds no answer.
    ctl = controllers("http-dns", selfCheck=False)
    ctl.wait_ready()
    wait_for(ctl.is_leader, 10, "leadership")
    names = ["web0", "web1"]
    fault("stop", "named")
    try:
        for name in names:
            _site(admin_api, namespace, name, lab.host(name))
        wait_for(lambda: ctl.value("certbotk8s_dns_provider_up", provider="http-01") == 0, 60,
                 "HTTP-01 DNS marked down")
        held = wait_for(lambda: [m for _, r, m in _warnings(admin_api, namespace, names)
                                 if r == "DnsUnavailable"], 30, "a DnsUnavailable Event")
        assert f"waiting for the DNS of HTTP-01 hosts at {lab['DNS_SERVER']}" in held[0]
        assert "the CA's validation failed meanwhile" in held[0]
        # The failed validation is told in that Event, not as an IssuanceFailed of its own.
        assert not [e for e in _warnings(admin_api, namespace, names)
                    if e[1] == "IssuanceFailed"]
        assert _failures(admin_api, namespace) == {}  # no counted backoff
    finally:
        fault("start", "named")
    for name in names:
        wait_for(functools.partial(read_secret, admin_api, namespace, f"{name}-tls"), 60, name)
    # The failed orders are dead at the CA: at most one new order each after the outage.
    assert _orders_placed(ctl.log_path, namespace) <= 2 * len(names)
    assert _failures(admin_api, namespace) == {}


def _warnings(api: ApiClient, namespace: str, names: list[str]) -> list[tuple[str, str, str]]:
    return [(name, reason, message) for name in names
            for type_, reason, message in events_for(api, namespace, name)
            if type_ == "Warning"]


# --- renew --once ----------------------------------------------------------------------------


def test_renew_once_with_the_ca_down_orders_nothing_and_counts_no_backoff(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    names = ["one", "two"]
    for name in names:
        _site(admin_api, namespace, name, lab.host(name))
    fault("stop", "pebble")
    try:
        run = certbotk8s("renew", "--once", "-n", namespace)
    finally:
        fault("start", "pebble")
    assert run.code != 0, run
    assert run.out.count("FAILED: CA unreachable: cannot reach the CA") == len(names), run
    assert "issuance failed" not in run.out  # not one order was tried
    for name in names:
        events = [e for e in events_for(admin_api, namespace, name) if e[0] == "Warning"]
        assert [r for _, r, _ in events] == ["CaUnavailable"], events
        assert "CA unreachable: cannot reach the CA" in events[0][2]
        assert "issuer pebble" in events[0][2]
    assert _failures(admin_api, namespace) == {}
    # No backoff holds them: the next run, with the CA back, issues both.
    again = certbotk8s("renew", "--once", "-n", namespace)
    assert again.code == 0, again
    for name in names:
        assert read_secret(admin_api, namespace, f"{name}-tls") is not None


def test_renew_once_with_the_dns_server_down_holds_the_rest_without_backoff(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    bind_stopped: None,
) -> None:
    names = [f"d{uuid.uuid4().hex[:4]}", f"e{uuid.uuid4().hex[:4]}"]
    for name in names:
        _site(admin_api, namespace, name, lab.host(name), DNS01)
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    assert run.out.count("FAILED: DNS server unreachable: ") == len(names), run
    assert run.out.count("(DNS provider lab-bind)") == len(names), run
    for name in names:
        reasons = [r for t, r, _ in events_for(admin_api, namespace, name) if t == "Warning"]
        assert reasons == ["DnsUnavailable"], reasons
    assert _failures(admin_api, namespace) == {}


def test_renew_once_http01_validation_failed_while_dns_is_down_counts_no_backoff(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    # No self-check: the order goes to the CA with BIND down, and Pebble (which resolves the
    # hosts through BIND) fails the validation; the run's own lookup of the host gets no answer.
    config = str(controller_config(lab, tmp_path, "no-self-check", selfCheck=False))
    first, added = lab.host("web"), lab.host("more")
    _site(admin_api, namespace, "web", first)
    issued = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert issued.code == 0, issued
    # A second host makes the managed Secret due (hosts changed): a renewal with a new name,
    # whose authorization Pebble cannot reuse.
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.patch_namespaced_ingress("web", namespace, {"spec": {"tls": [
        {"hosts": [first, added], "secretName": "web-tls"}]}})
    fault("stop", "named")
    try:
        run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    finally:
        fault("start", "named")
    assert run.code != 0, run
    resolver = f"(DNS of HTTP-01 hosts at {lab['DNS_SERVER']})"
    lines = [line for line in run.out.splitlines() if "FAILED: DNS server unreachable: " in line]
    assert len(lines) == 1 and resolver in lines[0], run
    assert run.out.count(resolver) == 1, run  # one line for it, not a log line besides
    assert "the CA's validation failed meanwhile" in lines[0]
    warnings = [(r, m) for t, r, m in events_for(admin_api, namespace, "web") if t == "Warning"]
    assert [r for r, _ in warnings] == ["DnsUnavailable"], warnings  # no IssuanceFailed
    assert lab["DNS_SERVER"] in warnings[0][1] and "cannot resolve" in warnings[0][1]
    secret = read_secret(admin_api, namespace, "web-tls")
    assert secret is not None
    assert _failures(admin_api, namespace) == {}
    # DNS answers again: the next run renews at once (no backoff holds it).
    again = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert again.code == 0, again
    renewed = read_secret(admin_api, namespace, "web-tls")
    assert renewed is not None
    hosts = (renewed.metadata.annotations or {})["certbotk8s.io/hosts"]
    assert sorted(hosts.split(",")) == sorted([first, added])
    verify_chain(base64.b64decode(renewed.data["tls.crt"]), lab.roots())
