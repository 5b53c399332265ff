"""Attack suite: hostile tenants, each a ServiceAccount bound to a Role in its own namespace,
against a running controller (one for the module); after every attack nothing has crossed a
namespace."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.core.sources.claimants import pattern_matches
from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .controllers import wait_for
from .tenancy import ISSUE_WITHIN, ISTIO, Start, Tenant, TenantPool, _uid, tenant_pool

pytestmark = pytest.mark.lab

# -- observations (admin identity) ----------------------------------------------------------


def _events(admin: ApiClient, namespace: str, kind: str, name: str) -> list[Any]:
    core: Any = k8s.CoreV1Api(admin)
    return list(core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}").items)


def _wait_event(admin: ApiClient, namespace: str, kind: str, name: str, reason: str) -> Any:
    return wait_for(lambda: [e for e in _events(admin, namespace, kind, name)
                             if e.reason == reason], ISSUE_WITHIN,
                    f"{reason} Event on {kind}/{namespace}/{name}")


def _secret(admin: ApiClient, namespace: str, name: str) -> Any:
    return wait_for(lambda: read_secret(admin, namespace, name), ISSUE_WITHIN,
                    f"Secret {namespace}/{name}")


def _hosts(secret: Any) -> list[str]:
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(names.get_values_for_type(x509.DNSName))


def _public_key(secret: Any) -> bytes | None:
    """The Secret's public key; None for placeholder bytes that are no key at all (the adapter
    tests of other modules write such Secrets into the shared lab)."""
    try:
        key = serialization.load_pem_private_key(base64.b64decode(secret.data["tls.key"]), None)
    except ValueError:
        return None
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_nothing_crossed(admin: ApiClient, tenants: list[Tenant],
                           patterns: bool = False) -> None:
    """No key in two namespaces; tenants' certificates only in their own namespace and only
    for their own domain (when `patterns`); nothing written into kube-system."""
    core: Any = k8s.CoreV1Api(admin)
    managed = core.list_secret_for_all_namespaces(
        label_selector=f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}").items
    by_key: dict[bytes, set[str]] = {}
    for secret in managed:
        if secret.type == "kubernetes.io/tls" and secret.data and "tls.key" in secret.data:
            public = _public_key(secret)
            if public is not None:
                by_key.setdefault(public, set()).add(secret.metadata.namespace)
    shared = [namespaces for namespaces in by_key.values() if len(namespaces) > 1]
    assert not shared, f"one key in several namespaces: {shared}"
    assert not [s for s in managed if s.metadata.namespace == "kube-system"]
    for tenant in tenants:
        for secret in (s for s in managed if s.metadata.namespace == tenant.namespace):
            hosts = _hosts(secret)
            for other in tenants:
                if other is not tenant:
                    assert not [h for h in hosts if h.endswith(other.domain)], hosts
            if patterns:
                assert all(pattern_matches(f"*.{tenant.domain}", h) for h in hosts), hosts


@pytest.fixture(scope="module")
def pool(admin_api: ApiClient, lab: Lab, controller_api: ApiClient,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantPool]:
    """The attacks below share one controller whose hostPatterns name every pool tenant (its
    own domain, and one domain all of them may ask for); each attack takes fresh tenants."""
    yield from tenant_pool(admin_api, lab, tmp_path_factory.mktemp("tenants"), 18)


# -- the attacks ------------------------------------------------------------------------------


def test_tenant_identity_is_confined_to_its_namespace(
        admin_api: ApiClient, lab: Lab, tenants: Callable[[str], Tenant]) -> None:
    """The attacker below is a real, narrow identity: it cannot read other namespaces."""
    a, b = tenants("a"), tenants("b")
    core: Any = k8s.CoreV1Api(a.api)
    core.list_namespaced_secret(a.namespace)
    checks: list[Callable[[], Any]] = [lambda: core.list_namespaced_secret(b.namespace),
                                       lambda: core.list_secret_for_all_namespaces()]
    for forbidden in checks:
        with pytest.raises(ApiException) as info:
            forbidden()
        assert info.value.status == 403


def test_copying_another_tenants_hosts_never_yields_its_key(
        admin_api: ApiClient, tenants: Callable[[str], Tenant], controller: Start) -> None:
    """Finding 1. Even with hosts shared on purpose (shareHosts), two namespaces asking for the
    same host set at the same moment get separate orders and keys."""
    a, b = tenants("a"), tenants("b")
    controller(tenants={"shareHosts": True})
    host = b.host("shop")
    b.ingress("shop", [host])
    a.ingress("copy", [host])
    mine, theirs = _secret(admin_api, a.namespace, "copy-tls"), _secret(
        admin_api, b.namespace, "shop-tls")
    assert _hosts(mine) == _hosts(theirs) == [host]
    assert _public_key(mine) != _public_key(theirs)
    assert_nothing_crossed(admin_api, [])


def test_host_held_by_another_namespace_is_refused(admin_api: ApiClient,
                                                   pool: TenantPool) -> None:
    """Finding 1 and 3: first claimant protection, for a host both namespaces may ask for."""
    a, b = pool.take(2)
    host = f"shop-{_uid()}.{pool.shared}"
    b.ingress("shop", [host])
    held = _secret(admin_api, b.namespace, "shop-tls")
    a.ingress("copy", [host, a.host("own")])
    event = _wait_event(admin_api, a.namespace, "Ingress", "copy", "HostClaimed")[0]
    assert host in event.message
    assert read_secret(admin_api, a.namespace, "copy-tls") is None
    assert read_secret(admin_api, b.namespace, "shop-tls").data == held.data
    assert_nothing_crossed(admin_api, [a, b])


def test_hosts_outside_the_namespaces_patterns_are_refused(
        admin_api: ApiClient, lab: Lab, pool: TenantPool) -> None:
    """Finding 3: another team's host, or a wildcard over the whole zone through the shared
    DNS key, is refused before any challenge; the owner is served throughout."""
    a, b = pool.take(2)
    a.ingress("theirs", [b.host("x")])
    a.ingress("zone", [f"*.{lab['DNS_ZONE']}"], **{"certbotk8s.io/challenge": "dns-01"})
    b.ingress("own", [b.host("www")])
    _secret(admin_api, b.namespace, "own-tls")
    for name in ("theirs", "zone"):
        _wait_event(admin_api, a.namespace, "Ingress", name, "HostNotAllowed")
        assert read_secret(admin_api, a.namespace, f"{name}-tls") is None
    assert_nothing_crossed(admin_api, [a, b], patterns=True)


def test_huge_renew_before_is_refused_and_others_are_served(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Finding 2: `renew-before: 99999999999d` used to raise out of every reconcile."""
    a, b = pool.take(2)
    ctl = pool.running()
    a.ingress("stop", [a.host()], **{"certbotk8s.io/renew-before": "99999999999d"})
    event = _wait_event(admin_api, a.namespace, "Ingress", "stop", "InvalidAnnotation")[0]
    assert "renew-before" in event.message
    b.ingress("after", [b.host()])
    _secret(admin_api, b.namespace, "after-tls")
    assert ctl.get("/healthz")[0] == 200
    assert "Traceback" not in ctl.log()
    assert_nothing_crossed(admin_api, [a, b], patterns=True)


def test_gateway_namespace_override_cannot_reach_kube_system(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Finding 4: an allow-listed Istio namespace aims its Secret at kube-system."""
    (a,) = pool.take(1)
    credential = f"grab-{_uid()}"
    a.istio_gateway("gw", credential, [a.host()],
                    **{"certbotk8s.io/gateway-namespace": "kube-system"})
    event = _wait_event(admin_api, a.namespace, "Gateway", "gw", "NamespaceNotAllowed")[0]
    assert "kube-system" in event.message
    assert read_secret(admin_api, "kube-system", credential) is None
    assert_nothing_crossed(admin_api, [a], patterns=True)


def test_secret_conflict_never_stops_the_first_claimant(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Finding 5: a second tenant claims the first one's credentialName with other hosts; the
    first keeps its Secret and its next (re-)issuance still happens."""
    a, b = pool.take(2)
    credential = f"cred-{_uid()}"
    first_host = b.host("gw")
    b.istio_gateway("gw", credential, [first_host])
    assert _hosts(_secret(admin_api, "istio-system", credential)) == [first_host]
    a.istio_gateway("grab", credential, [a.host()])
    _wait_event(admin_api, a.namespace, "Gateway", "grab", "SecretConflict")
    _wait_event(admin_api, b.namespace, "Gateway", "gw", "SecretConflict")
    # The holder changes its hosts: re-issued despite the conflict.
    second_host = b.host("more")
    group, version, plural = ISTIO
    custom: Any = k8s.CustomObjectsApi(b.api)
    gateway = custom.get_namespaced_custom_object(group, version, b.namespace, plural, "gw")
    gateway["spec"]["servers"][0]["hosts"] = [first_host, second_host]
    custom.replace_namespaced_custom_object(group, version, b.namespace, plural, "gw", gateway)
    wait_for(lambda: _hosts(read_secret(admin_api, "istio-system", credential))
             == sorted([first_host, second_host]), ISSUE_WITHIN, "the holder's renewal")
    assert_nothing_crossed(admin_api, [a, b], patterns=True)


def test_a_second_namespace_naming_anothers_credential_gets_no_share_of_it(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Issue 20, finding 8: a tenant's Istio Gateway names the `credentialName` and hosts of
    another's (both may ask for the shared domain). Both Gateways were one order and one key;
    now the holder keeps the Secret and the newcomer is refused, told why on its Gateway."""
    a, b = pool.take(2)
    credential = f"twin-{_uid()}"
    host = f"twin-{_uid()}.{pool.shared}"
    b.istio_gateway("gw", credential, [host])
    issued = _secret(admin_api, "istio-system", credential)
    a.istio_gateway("twin", credential, [host])
    event = _wait_event(admin_api, a.namespace, "Gateway", "twin", "HostClaimed")[0]
    assert credential in event.message
    kept = read_secret(admin_api, "istio-system", credential)
    assert kept.data["tls.key"] == issued.data["tls.key"]
    assert kept.metadata.annotations[secret_meta.SOURCE] == f"Gateway/{b.namespace}/gw"
    assert not [e for e in _events(admin_api, b.namespace, "Gateway", "gw")
                if e.reason in ("HostClaimed", "SecretConflict")]
    assert_nothing_crossed(admin_api, [a, b])


def test_floods_are_capped_and_others_are_served(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Finding 7: 101 names for one certificate, 500 invalid hosts (one Event each before;
    single-label names pass the API server's validation and are refused by certbotk8s)."""
    a, b = pool.take(2)
    a.ingress("wide", [a.host(f"n{i}") for i in range(101)])
    a.ingress("junk", [f"intranet-{i}" for i in range(500)])
    b.ingress("calm", [b.host()])
    _wait_event(admin_api, a.namespace, "Ingress", "wide", "TooManyHosts")
    _wait_event(admin_api, a.namespace, "Ingress", "junk", "TooManyProblems")
    _secret(admin_api, b.namespace, "calm-tls")
    assert len(_events(admin_api, a.namespace, "Ingress", "junk")) <= 11
    assert read_secret(admin_api, a.namespace, "wide-tls") is None
    assert_nothing_crossed(admin_api, [a, b], patterns=True)


def test_an_event_flood_is_held_to_its_budget_and_others_are_served(
        admin_api: ApiClient, pool: TenantPool) -> None:
    """Issue 20, finding 4: 150 refused Ingresses (an Event each) used to be 150 posts before
    anyone's order. Against the API server: the victim's certificate arrives, and the flooding
    namespace's Events stop at its budget (60 a minute): the controller counts the drops.
    (The EventsDropped summary at the window's end is proven on a fake clock in
    tests/unit/test_event_queue.py; waiting a real minute for it here proves nothing more.)"""
    a, b = pool.take(2)
    controller = pool.running()

    def dropped() -> float:
        return controller.value("certbotk8s_events_dropped_total", reason="namespace") or 0.0

    before = dropped()
    for i in range(150):
        a.ingress(f"bad-{i}", [a.host()], **{"certbotk8s.io/key-type": "rsa-1"})
    b.ingress("calm", [b.host()])
    _secret(admin_api, b.namespace, "calm-tls")
    wait_for(lambda: dropped() > before, ISSUE_WITHIN, "Events dropped over the namespace budget")
    core: Any = k8s.CoreV1Api(admin_api)
    refusals = {e.involved_object.name for e in core.list_namespaced_event(a.namespace).items
                if e.reason == "InvalidAnnotation"}
    assert len(refusals) <= 2 * 60  # this window's budget and perhaps the next one's
    assert_nothing_crossed(admin_api, [a, b])


def test_status_output_is_terminal_safe(
        admin_api: ApiClient, lab: Lab, pool: TenantPool) -> None:
    """Finding 8: a tenant writes escape sequences into its own Secret's last-error; `status`
    neither passes them to the terminal nor shows them (it reads the records)."""
    (a,) = pool.take(1)
    a.ingress("term", [a.host()])
    _secret(admin_api, a.namespace, "term-tls")
    core: Any = k8s.CoreV1Api(a.api)
    core.patch_namespaced_secret("term-tls", a.namespace, {"metadata": {"annotations": {
        "certbotk8s.io/last-error": "\x1b]0;owned\x07\x1b[2J\r\nfake row"}}})
    env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
               CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"])
    out = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "status", "-n", a.namespace],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "term-tls" in out.stdout
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\r" not in out.stdout
    # The annotation is a display copy: status shows the controller's record, not the edit.
    assert "owned" not in out.stdout and "fake row" not in out.stdout
