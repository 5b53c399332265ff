"""The controller's memory against hostile tenants: forged claims, poisoned times and budgets,
simultaneous claims and lost records, each tried by a real Role-only tenant identity against a
running controller; the victim in another namespace always gets its certificate."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.records import ROLE, ROLE_LABEL, KubeRecordStore
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .controllers import wait_for
from .records_view import CONTROLLER_NAMESPACE
from .tenancy import ISSUE_WITHIN, Start, Tenant
from .test_tenants import _events, _hosts, _secret, _wait_event

pytestmark = pytest.mark.lab

OVERFLOW = "9999-12-31T23:59:59-23:59"
MANAGED = {secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE}


def _self_signed(host: str) -> tuple[bytes, bytes]:
    """A certificate and key a tenant can make for itself (no CA involved)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def _tls_secret(tenant: Tenant, name: str, annotations: dict[str, str],
                crt: bytes = b"", key: bytes = b"") -> None:
    """A Secret the tenant writes itself, labelled as if certbotk8s managed it."""
    core: Any = k8s.CoreV1Api(tenant.api)
    core.create_namespaced_secret(tenant.namespace, {
        "metadata": {"name": name, "labels": MANAGED, "annotations": annotations},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(crt).decode(),
                 "tls.key": base64.b64encode(key).decode()}})


def _serial(secret: Any) -> int:
    crt = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    return crt.serial_number


def _cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=lab["CONTROLLER_KUBECONFIG"],
               CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"])
    return subprocess.run([sys.executable, "-m", "certbotk8s.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def _no_traceback(ctl: Any) -> None:
    assert ctl.get("/healthz")[0] == 200
    assert "Traceback" not in ctl.log() and "OverflowError" not in ctl.log()


def test_a_forged_claim_is_no_claim(admin_api: ApiClient, tenants: Callable[[str], Tenant],
                                    controller: Start) -> None:
    """Attack 1: an empty labelled Secret naming another namespace's host holds nothing."""
    attacker, victim = tenants("a"), tenants("b")
    ctl = controller()
    host = victim.host("shop")
    _tls_secret(attacker, "forged", {secret_meta.HOSTS: host,
                                     secret_meta.SOURCE: f"Ingress/{attacker.namespace}/x"})
    victim.ingress("shop", [host])
    assert _hosts(_secret(admin_api, victim.namespace, "shop-tls")) == [host]
    assert not [e for e in _events(admin_api, victim.namespace, "Ingress", "shop")
                if e.reason == "HostClaimed"]
    _no_traceback(ctl)


def test_poisoned_times_stop_nobody(admin_api: ApiClient, lab: Lab,
                                    tenants: Callable[[str], Tenant], controller: Start) -> None:
    """Attack 2: overflowing times in every certbotk8s annotation of the attacker's own
    Secret; the controller and `renew --once`, `plan`, `status` go on for everyone."""
    attacker, victim = tenants("a"), tenants("b")
    own = attacker.host("own")
    crt, key = _self_signed(own)
    poison = {key_: OVERFLOW for key_ in (
        secret_meta.RENEW_REQUESTED_AT, secret_meta.NEXT_ATTEMPT, secret_meta.ISSUED_AT,
        secret_meta.NOT_AFTER, secret_meta.NOT_BEFORE, secret_meta.ISSUANCE_HISTORY,
        secret_meta.LAST_ERROR_AT)}
    poison[secret_meta.RENEWAL_MOMENT] = f"{OVERFLOW} x {OVERFLOW} {OVERFLOW}"
    poison[secret_meta.FAILURES] = "99999999999999999999"
    poison[secret_meta.HOSTS] = own
    _tls_secret(attacker, "own-tls", poison, crt, key)
    attacker.ingress("own", [own])
    ctl = controller()
    host = victim.host("www")
    victim.ingress("www", [host])
    assert _hosts(_secret(admin_api, victim.namespace, "www-tls")) == [host]
    _no_traceback(ctl)
    ctl.stop()
    # The one-shot commands read the same Secrets.
    for args in (("plan",), ("status",), ("renew", "--once", "-n", victim.namespace)):
        run = _cli(lab, *args)
        assert "Traceback" not in run.stderr and "OverflowError" not in run.stderr, run.stderr
        assert run.returncode == 0, (args, run.stdout, run.stderr)


def test_a_poisoned_budget_holds_back_nobody(admin_api: ApiClient, lab: Lab,
                                             tenants: Callable[[str], Tenant],
                                             controller: Start) -> None:
    """Attack 3: the attacker's Secret claims 60 issuances this week under the registered
    domain every tenant shares; the budget counts only what the controller recorded."""
    attacker, victim = tenants("a"), tenants("b")
    now = dt.datetime.now(dt.UTC)
    history = ",".join(secret_meta.format_time(now - dt.timedelta(minutes=i))
                       for i in range(60))
    _tls_secret(attacker, "greedy-tls", {secret_meta.HOSTS: attacker.host("g"),
                                         secret_meta.ISSUANCE_HISTORY: history,
                                         secret_meta.ISSUED_AT: secret_meta.format_time(now)})
    # The lab's own certificates under that domain are in the records too: leave room for
    # ten more than they spent (the attacker's 60 would use it all up if they counted).
    spent = _counted_issuances(admin_api, attacker.domain, now)
    data = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    pebble = data["issuers"]["pebble"]
    pebble["rateLimits"] = {**pebble["rateLimits"], "certificatesPerDomain": spent + 10}
    ctl = controller(issuers={"pebble": pebble})
    host = victim.host("new")
    victim.ingress("new", [host])
    assert _hosts(_secret(admin_api, victim.namespace, "new-tls")) == [host]
    assert not [e for e in _events(admin_api, victim.namespace, "Ingress", "new")
                if e.reason == "RateLimitHold"]
    _no_traceback(ctl)


def test_one_namespace_spends_only_its_share_of_a_registered_domain(
        admin_api: ApiClient, lab: Lab, tenants: Callable[[str], Tenant],
        controller: Start) -> None:
    """Issue 20, finding 3: one namespace's certificates under the registered domain every
    tenant shares held every other team for a week. Now it stops at its share
    (`rateLimits.namespaceDomainShare`) with a RateLimitHold, and another namespace still gets
    its certificate under that domain."""
    attacker, victim = tenants("a"), tenants("b")
    now = dt.datetime.now(dt.UTC)
    spent = _counted_issuances(admin_api, attacker.domain, now)
    limit = max(spent + 10, 100)  # room for 10 more at least; 2 % of it: the share
    share = ratelimit.namespace_domain_share(ratelimit.Limits(
        certs_per_domain=limit, namespace_domain_share_percent=2))
    assert share + 1 < limit - spent, (share, limit, spent)  # the victim's one still fits
    data = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    pebble = data["issuers"]["pebble"]
    pebble["rateLimits"] = {**pebble["rateLimits"], "certificatesPerDomain": limit,
                            "namespaceDomainShare": 2}
    ctl = controller(issuers={"pebble": pebble})
    for i in range(share):  # one at a time: each is counted before the next is asked for
        attacker.ingress(f"n{i}", [attacker.host()])
        _secret(admin_api, attacker.namespace, f"n{i}-tls")
    attacker.ingress("over", [attacker.host()])
    hold = _wait_event(admin_api, attacker.namespace, "Ingress", "over", "RateLimitHold")[0]
    assert f"namespace {attacker.namespace} used its share ({share})" in hold.message
    assert read_secret(admin_api, attacker.namespace, "over-tls") is None
    host = victim.host("mine")
    victim.ingress("mine", [host])
    assert _hosts(_secret(admin_api, victim.namespace, "mine-tls")) == [host]
    assert not [e for e in _events(admin_api, victim.namespace, "Ingress", "mine")
                if e.reason == "RateLimitHold"]
    _no_traceback(ctl)


def _counted_issuances(admin: ApiClient, host: str, now: dt.datetime) -> int:
    """Issuances the controller's records count against `host`'s registered domain now."""
    domain = ratelimit.registered_domain(host)
    records = KubeRecordStore(admin, CONTROLLER_NAMESPACE).load().values()
    return sum(1 for record in records for issued in secret_meta.issuance_records(record, now)
               if not issued.renewal_with_ari
               and any(ratelimit.registered_domain(h) == domain for h in issued.hosts))


def test_of_two_simultaneous_claimants_exactly_one_wins_and_keeps_renewing(
        admin_api: ApiClient, lab: Lab, tenants: Callable[[str], Tenant],
        controller: Start) -> None:
    """Attack 5: two namespaces create an Ingress for one host at the same moment. Exactly
    one gets a certificate, the other is refused, and the winner's renewal still happens."""
    a, b = tenants("a"), tenants("b")
    ctl = controller()
    host = a.host("race")
    start = threading.Barrier(2)

    def create(tenant: Tenant) -> None:
        start.wait()
        tenant.ingress("race", [host])

    threads = [threading.Thread(target=create, args=(t,)) for t in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def settled() -> tuple[Tenant, Tenant] | None:
        for winner, loser in ((a, b), (b, a)):
            if (read_secret(admin_api, winner.namespace, "race-tls") is not None
                    and [e for e in _events(admin_api, loser.namespace, "Ingress", "race")
                         if e.reason == "HostClaimed"]):
                return winner, loser
        return None

    winner, loser = wait_for(settled, ISSUE_WITHIN, "one certificate and one HostClaimed")
    assert read_secret(admin_api, loser.namespace, "race-tls") is None
    first = _serial(read_secret(admin_api, winner.namespace, "race-tls"))
    renewed = _cli(lab, "renew", f"{winner.namespace}/race-tls", "--timeout", "90",
                   "--lease-name", ctl.lease)  # the running controller renews it
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert _serial(read_secret(admin_api, winner.namespace, "race-tls")) != first
    assert read_secret(admin_api, loser.namespace, "race-tls") is None
    assert not [e for e in _events(admin_api, winner.namespace, "Ingress", "race")
                if e.reason == "HostClaimed"]


def _delete_records(admin: ApiClient, namespace: str) -> int:
    core: Any = k8s.CoreV1Api(admin)
    shards = core.list_namespaced_secret(namespace,
                                         label_selector=f"{ROLE_LABEL}={ROLE}").items
    for shard in shards:
        core.delete_namespaced_secret(shard.metadata.name, namespace)
    return len(shards)


def test_deleted_records_cost_no_duplicate_and_no_rightful_owner(
        admin_api: ApiClient, lab: Lab, tenants: Callable[[str], Tenant],
        controller: Start) -> None:
    """The records deleted while the controller runs, and again before a restart: the holder
    keeps its host and its certificate (no new order), a later claimant stays refused."""
    owner, latecomer = tenants("a"), tenants("b")
    ctl = controller()
    host = owner.host("keep")
    owner.ingress("keep", [host])
    serial = _serial(_secret(admin_api, owner.namespace, "keep-tls"))
    namespace = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())["controllerNamespace"]
    wait_for(lambda: _delete_records(admin_api, namespace), ISSUE_WITHIN, "records written")
    latecomer.ingress("grab", [host])
    _wait_event(admin_api, latecomer.namespace, "Ingress", "grab", "HostClaimed")
    ctl.stop()
    _delete_records(admin_api, namespace)
    restarted = controller()
    latecomer.ingress("grab-again", [host])
    _wait_event(admin_api, latecomer.namespace, "Ingress", "grab-again", "HostClaimed")
    assert _serial(read_secret(admin_api, owner.namespace, "keep-tls")) == serial
    assert read_secret(admin_api, latecomer.namespace, "grab-tls") is None
    assert not restarted.orders().get(f"{owner.namespace}/keep-tls")
    _no_traceback(restarted)
