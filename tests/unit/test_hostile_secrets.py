"""Tenant-writable Secrets (annotations, labels, tls.crt, tls.key) never raise out of a pass."""

from __future__ import annotations

import base64
import logging
import os
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certbotk8s.app.commands import force
from certbotk8s.app.controller.watch import observe_json
from certbotk8s.app.isolation import INTERNAL_ERROR, InternalError
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.oneshot import run as oneshot_run
from certbotk8s.app.oneshot.pass_outages import PassOutages
from certbotk8s.app.oneshot.run import run_pass
from certbotk8s.app.orders import survey
from certbotk8s.core.budget import ledger
from certbotk8s.core.model import SecretRef
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.renewal import policy
from certbotk8s.core.renewal.plan import ActionKind, plan
from certbotk8s.core.sources import annotations as ann
from certbotk8s.core.sources import cert_manager as cm
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import CERT_MANAGER_ISSUER, CERT_MANAGER_LABEL, observe

from . import hostile
from .factories import T0, desired, ingress, make_config, observed_for, tls_entry
from .hostile import NOW, stored_secret

EXAMPLES = int(os.environ.get("CERTBOTK8S_HOSTILE_EXAMPLES", "10000"))
CONFIG = make_config()
# Moving from cert-manager (config `migration`): its Ingress annotations and Secrets are read.
MIGRATING = make_config(migration={"certManagerIssuers": {"letsencrypt-prod": "le",
                                                          "letsencrypt-staging": "staging"}})
OVERFLOWING = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59")
TIME_ANNOTATIONS = (secret_meta.RENEW_REQUESTED_AT, secret_meta.RENEWAL_MOMENT,
                    secret_meta.NEXT_ATTEMPT, secret_meta.ISSUANCE_HISTORY,
                    secret_meta.ISSUED_AT, secret_meta.NOT_AFTER)
VICTIM = SecretRef("victim", "victim-tls")


# -- parse_time ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    *OVERFLOWING, "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z", "2025-01-01T00:00:00Z" + " " * 100, "9" * 100_000, "", "yesterday",
    "2025-13-01T00:00:00Z",
])
def test_parse_time_rejects_what_arithmetic_cannot_take(text: str) -> None:
    assert secret_meta.parse_time(text) is None


def test_parse_time_normalises_to_utc() -> None:
    parsed = secret_meta.parse_time("2025-01-01T02:00:00+02:00")
    assert parsed == datetime(2025, 1, 1, tzinfo=UTC)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    assert secret_meta.parse_time("2199-12-31T23:59:59Z") is not None


@pytest.mark.parametrize("value", OVERFLOWING)
@pytest.mark.parametrize("key", TIME_ANNOTATIONS)
def test_overflowing_time_annotations_are_ignored_everywhere(key: str, value: str) -> None:
    d = desired("a.example.com")
    seen = observed_for(d)
    moment = f"{value} aki.serial {value} {value}"
    annotations = {**seen.recorded, secret_meta.FAILURES: "3",
                   key: moment if key == secret_meta.RENEWAL_MOMENT else value}
    seen = observed_for(d, annotations=annotations)
    now = T0 + timedelta(days=10)
    (action,) = plan([d], {d.secret: seen}, now, {})
    assert action.kind is not ActionKind.RENEW or action.reason.code is not \
        policy.ReasonCode.RENEWAL_REQUESTED
    assert secret_meta.parse_failures(annotations).next_attempt is None or \
        key != secret_meta.NEXT_ATTEMPT
    secret_meta.issuance_records(annotations, now)
    secret_meta.append_history(annotations.get(secret_meta.ISSUANCE_HISTORY), now, now)
    assert force.answered(StoredSecret("ns", "s", "1", "kubernetes.io/tls",
                                       annotations=annotations), None) is False
    ledger.from_json({ledger.ORDERS: [[value, "ns", False]]})


# -- the renewal request ---------------------------------------------------------------------


def test_a_renewal_request_in_the_future_is_no_request() -> None:
    d = desired("a.example.com")
    now = T0 + timedelta(days=10)
    base = observed_for(d)
    future = replace(base, renew_requested=secret_meta.format_time(now + timedelta(days=1)))
    past = replace(base, renew_requested=secret_meta.format_time(now - timedelta(hours=1)))
    assert policy.renewal_requested(d, future, now, None) is None
    requested = policy.renewal_requested(d, past, now, None)
    assert requested is not None and requested.code is policy.ReasonCode.RENEWAL_REQUESTED


# -- certificates and keys -------------------------------------------------------------------


@pytest.mark.parametrize("crt", [
    hostile.duplicate_san_pem(), hostile.unknown_key_algorithm_pem(), hostile.far_future_pem(),
    b"\x00\xff garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
])
def test_unreadable_certificates_are_a_parse_error(crt: bytes) -> None:
    with pytest.raises(certs.CertificateParseError):
        certs.certificate_info(crt)
    seen = observe(stored_secret("ns", "s", crt, hostile.leaf_key_pem()))
    assert seen.certificate is None and seen.parse_error
    assert b"PRIVATE" not in seen.parse_error.encode()


def test_an_ed25519_leaf_has_no_key_type_and_does_not_match() -> None:
    seen = observe(stored_secret("ns", "s", hostile.ed25519_pem(), hostile.leaf_key_pem()))
    assert seen.certificate is not None and seen.certificate.key_type is None
    assert not seen.key_matches


@pytest.mark.parametrize("key", [
    hostile.ed25519_key_pem(), hostile.encrypted_key_pem(), b"garbage",
    b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
])
def test_unreadable_keys_never_echo_the_key(key: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        keys.load_key_pem(key)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    seen = observe(stored_secret("ns", "s", hostile.good_pem(), key))
    assert seen.parse_error == "tls.key is not a readable private key"


def test_a_good_certificate_still_reads() -> None:
    seen = observe(stored_secret("ns", "s", hostile.good_pem(), hostile.leaf_key_pem()))
    assert seen.parse_error is None and seen.key_matches
    assert seen.certificate is not None and seen.certificate.ari_cert_id


@pytest.mark.parametrize("crt", [hostile.good_pem(), b"\x00garbage" * 30_000])
def test_the_managed_secret_informer_keeps_no_annotation_and_no_data(crt: bytes) -> None:
    """Finding 8: the managed-Secret informer kept every annotation (251 KiB each: about
    2,000 Secrets filled the 512Mi limit). Its cache entry is what policy reads, a few hundred
    bytes, whatever the tenant put on the Secret or in tls.crt."""
    big = "x" * (251 * 1024)
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": "s", "namespace": "team-a", "resourceVersion": "7",
                        "labels": {secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE},
                        "annotations": {"other.io/blob": big, secret_meta.HOSTS: big,
                                        secret_meta.RENEW_REQUESTED_AT: big,
                                        "cert-manager.io/issuer-name": big}},
           "data": {"tls.crt": base64.b64encode(crt).decode(),
                    "tls.key": base64.b64encode(hostile.leaf_key_pem()).decode()}}
    kept = observe_json(obj)
    assert kept.managed
    assert len(repr(kept)) < 2048


# -- one certificate's exception stays with it -------------------------------------------------


def _two_tenants() -> tuple[list[dict[str, Any]], list[StoredSecret]]:
    ingresses = [
        ingress("bad", "team-a", tls=[tls_entry("bad-tls", "bad.example.com")]),
        ingress("victim", "victim", tls=[tls_entry("victim-tls", "victim.example.com")]),
    ]
    return ingresses, [stored_secret("team-a", "bad-tls", hostile.duplicate_san_pem(),
                                     hostile.leaf_key_pem())]


class _Exploding(hostile.Secrets):
    def read(self, namespace: str, name: str) -> StoredSecret | None:
        if name == "bad-tls":
            raise ZeroDivisionError("a bug")
        return super().read(namespace, name)


def test_run_pass_contains_a_certificate_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    ingresses, stored = _two_tenants()
    deps = hostile.pass_deps(CONFIG, ingresses, stored, NOW)
    deps.secrets = _Exploding(stored)
    with mock.patch.object(oneshot_run, "PassOutages", _outages), \
            caplog.at_level(logging.ERROR):
        report = run_pass(deps)
    by_ref = {o.action.desired.secret: o for o in report.outcomes}
    assert by_ref[VICTIM].ok and VICTIM in deps.secrets.written
    bad = by_ref[SecretRef("team-a", "bad-tls")]
    assert not bad.ok and isinstance(bad.error, InternalError) and report.failed
    assert "ZeroDivisionError" in bad.message and "a bug" not in bad.message
    events: Any = deps.events
    assert INTERNAL_ERROR in events.reasons()
    assert len([r for r in caplog.records if r.exc_info]) == 1  # one traceback, not one per step


def test_run_pass_contains_an_exception_while_ordering() -> None:
    ingresses, stored = _two_tenants()
    deps = hostile.pass_deps(CONFIG, ingresses, stored, NOW)
    original = oneshot_run.ordered

    def ordered(deps: Any, book: Any, action: Any, *rest: Any) -> Any:
        if action.desired.secret.name == "bad-tls":
            raise KeyError("boom")
        return original(deps, book, action, *rest)

    with mock.patch.object(oneshot_run, "PassOutages", _outages), \
            mock.patch.object(oneshot_run, "ordered", ordered):
        report = run_pass(deps)
    oks = {o.action.desired.secret: o.ok for o in report.outcomes}
    assert oks == {VICTIM: True, SecretRef("team-a", "bad-tls"): False}


def test_survey_for_status_and_plan_survives_a_secret_that_raises() -> None:
    ingresses, stored = _two_tenants()
    deps = hostile.pass_deps(CONFIG, ingresses, stored, NOW)
    deps.secrets = _Exploding(stored)
    current = survey(deps, read_ari=False)
    kinds = {a.desired.secret: (a.kind, a.reason.code) for a in current.actions}
    assert kinds[VICTIM] == (ActionKind.ISSUE, policy.ReasonCode.SECRET_MISSING)
    assert kinds[SecretRef("team-a", "bad-tls")] == (ActionKind.REFUSE,
                                                     policy.ReasonCode.INTERNAL_ERROR)
    assert not deps.events.posted  # type: ignore[attr-defined]  # read-only: no Events


def test_reconciler_contains_a_certificate_that_raises() -> None:
    ingresses, stored = _two_tenants()
    stored.append(stored_secret("team-b", "fine-tls", hostile.good_pem("fine.example.com"),
                                hostile.leaf_key_pem()))
    ingresses.append(ingress("fine", "team-b", tls=[tls_entry("fine-tls", "fine.example.com")]))
    deps = hostile.pass_deps(CONFIG, ingresses, stored, NOW)
    runner, metrics = hostile.Runner(), Metrics(process=False)

    class Schedule(hostile.Schedule):
        def at(self, name: str, when: datetime, fire: Callable[[], None]) -> None:
            if name.endswith("/fine-tls"):
                raise RuntimeError("a bug")
            super().at(name, when, fire)

    rec = hostile.reconciler(deps, hostile.Watch(ingresses, stored), runner, Schedule(),
                             metrics)
    rec.reconcile(NOW)
    assert {d.secret for d in runner.submitted} == {VICTIM, SecretRef("team-a", "bad-tls")}
    assert metrics.certificate_errors._value.get() == 1
    events: Any = deps.events
    assert [(o.name, r) for o, _, r, _ in events.posted if r == INTERNAL_ERROR] == [
        ("fine", INTERNAL_ERROR)]


def _outages(config: Any, solvers: Any) -> PassOutages:
    return PassOutages(config, solvers, probe=hostile.no_probe)


# -- property: generated tenant Secrets through both modes ----------------------------------

NAMES = ("s0", "s1")
TENANT_NAMESPACES = ("team-a", "team-b")
NASTY = (*OVERFLOWING, "9999-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
         "2025-03-01T00:00:00+14:00", "x" * 5000, "9" * 5000, "-1", "99999999", "true", "",
         "a.example.com,,b.example.com", "\x1b[2J", "aki.serial", "le", "staging",
         "ecdsa-p256", "shortlived", "\ud800", "\u202e",
         f"{OVERFLOWING[0]} aki.serial {OVERFLOWING[0]} {OVERFLOWING[0]}",
         "2025-01-20T00:00:00Z aki.serial 2025-01-10T00:00:00Z 2025-01-30T00:00:00Z",
         ",".join(["2025-01-31T00:00:00Z"] * 3 + [OVERFLOWING[0]]),
         # forged claims on the victim's host and a shared registered domain's budget
         "victim.example.com", "victim.example.com,s0.team-a.example.com",
         ",".join(["2025-01-31T00:00:00Z"] * 60))
ANNOTATION_KEYS = sorted({
    secret_meta.HOSTS, secret_meta.ISSUER, secret_meta.PROFILE, secret_meta.KEY_TYPE,
    secret_meta.NOT_BEFORE, secret_meta.NOT_AFTER, secret_meta.SERIAL, secret_meta.ARI_CERT_ID,
    secret_meta.SOURCE, secret_meta.ISSUED_AT, secret_meta.RENEW_REQUESTED_AT,
    secret_meta.ISSUANCE_HISTORY, secret_meta.LAST_ORDER_REPLACED, secret_meta.RENEWAL_MOMENT,
    secret_meta.FAILURES, secret_meta.NEXT_ATTEMPT, secret_meta.LAST_ERROR,
    secret_meta.LAST_ERROR_AT, "certbotk8s.io/bogus",
    # what cert-manager writes on its Secrets
    CERT_MANAGER_ISSUER, "cert-manager.io/issuer-kind", "cert-manager.io/certificate-name",
    "cert-manager.io/common-name", "cert-manager.io/alt-names", "cert-manager.io/ip-sans"})
CRTS = (hostile.duplicate_san_pem(), hostile.unknown_key_algorithm_pem(), hostile.ed25519_pem(),
        hostile.far_future_pem(), hostile.good_pem("s0.team-a.example.com"),
        hostile.good_pem(), b"", b"garbage", hostile.good_pem() + b"\x00" * 3,
        hostile.duplicate_san_pem()[:200])
KEYS = (hostile.leaf_key_pem(), hostile.ed25519_key_pem(), hostile.encrypted_key_pem(), b"",
        b"\xff\xfe")
MANAGED = {secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE}
LABELS: tuple[dict[str, str], ...] = (
    MANAGED, {}, {secret_meta.MANAGED_BY_LABEL: "Helm"},
    {secret_meta.MANAGED_BY_LABEL: "certbotk8s "},
    {**MANAGED, "x" * 300: "\x1b[2J"},
    {CERT_MANAGER_LABEL: "true"}, {CERT_MANAGER_LABEL: "true", **MANAGED},
    {CERT_MANAGER_LABEL: "True"})
NAMES = ("s0", "s1")
TENANT_NAMESPACES = ("team-a", "team-b")


def _nasty(rnd: random.Random) -> str:
    if rnd.random() < 0.3:  # a few random code points, any plane
        return "".join(chr(rnd.randrange(0x110000)) for _ in range(rnd.randrange(6)))
    return rnd.choice(NASTY)


def _tenant_secret(rnd: random.Random) -> StoredSecret:
    """One tenant Secret from the pools above (drawn from a Random: generation stays cheap)."""
    crt = rnd.choice(CRTS) if rnd.random() < 0.8 else rnd.randbytes(rnd.randrange(40))
    return StoredSecret(
        rnd.choice(TENANT_NAMESPACES), rnd.choice(NAMES), "1", "kubernetes.io/tls",
        labels=dict(rnd.choice(LABELS)),
        annotations={rnd.choice(ANNOTATION_KEYS): _nasty(rnd) for _ in range(rnd.randrange(5))},
        data={"tls.crt": crt, "tls.key": rnd.choice(KEYS)})


# cert-manager's Ingress annotations (read under config `migration`), the read and the ignored
CM_KEYS = (*sorted(cm.READ), cm.DURATION, "cert-manager.io/common-name",
           "cert-manager.io/private-key-rotation-policy", "cert-manager.io/usages",
           "cert-manager.io/bogus")
CM_ISSUERS = ("letsencrypt-prod", "letsencrypt-staging", " letsencrypt-prod ", "unmapped")
CM_VALUES: dict[str, tuple[str, ...]] = {  # what each key is likely to hold, valid or not
    cm.ISSUER: CM_ISSUERS, cm.CLUSTER_ISSUER: CM_ISSUERS,
    cm.KEY_ALGORITHM: ("RSA", "ECDSA", "ecdsa", "Ed25519", "DSA"),
    cm.KEY_SIZE: ("2048", "3072", "4096", "256", "384", "521", "0", "-1"),
    cm.RENEW_BEFORE: ("720h", "360h0m0s", "1h30m", "-1h", "0s", "9999999999h", "99999999999d"),
    cm.DURATION: ("2160h", "1h"), cm.ISSUER_KIND: ("ClusterIssuer", "Issuer", "AWSPCAIssuer"),
    cm.ISSUER_GROUP: ("cert-manager.io", "awspca.cert-manager.io")}


def _tenant_ingress(rnd: random.Random, ns: str, name: str) -> dict[str, Any]:
    """A tenant's Ingress for its own host, opted in by certbotk8s's annotation, by
    cert-manager's, by both or by none, with cert-manager's other annotations drawn."""
    annotations: dict[str, str] = {}
    for key in rnd.sample(CM_KEYS, rnd.randrange(5)):
        likely = CM_VALUES.get(key)
        annotations[key] = rnd.choice(likely) if likely and rnd.random() < 0.8 else _nasty(rnd)
    if rnd.random() < 0.5:
        annotations[ann.ENABLED] = "true"
    return ingress(f"i-{name}", ns, annotations=annotations,
                   tls=[tls_entry(name, f"{name}.{ns}.example.com")])


VICTIM_INGRESS = ingress("victim", "victim", tls=[tls_entry("victim-tls", "victim.example.com")])


METRICS = Metrics(process=False)  # one registry for every example: building one is the cost


def test_no_tenant_secret_raises_out_of_either_mode() -> None:
    with mock.patch.object(oneshot_run, "PassOutages", _outages):
        _both_modes()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def _both_modes(rnd: random.Random) -> None:
    tenant = [_tenant_secret(rnd) for _ in range(rnd.randrange(5))]
    now = T0 + timedelta(days=rnd.randrange(400))
    config = MIGRATING if rnd.random() < 0.5 else CONFIG
    ingresses = [*(_tenant_ingress(rnd, ns, name) for ns in TENANT_NAMESPACES for name in NAMES),
                 VICTIM_INGRESS]
    # the CronJob pass
    deps = hostile.pass_deps(config, ingresses, tenant, now)
    report = run_pass(deps)
    victim = [o for o in report.outcomes if o.action.desired.secret == VICTIM]
    assert [o.ok for o in victim] == [True]
    assert VICTIM in deps.secrets.written  # type: ignore[attr-defined]
    assert not any(isinstance(o.error, InternalError) for o in report.outcomes)
    # the controller's pass over the same Secrets
    runner = hostile.Runner()
    errors = METRICS.certificate_errors._value.get()
    deps = hostile.pass_deps(config, ingresses, tenant, now)
    watch = hostile.Watch(ingresses, tenant, adopt_cert_manager=config is MIGRATING)
    hostile.reconciler(deps, watch, runner, hostile.Schedule(), METRICS).reconcile(now)
    assert VICTIM in {d.secret for d in runner.submitted}
    assert METRICS.certificate_errors._value.get() == errors
