"""Controller metrics: ACME endpoint mapping (Pebble and Boulder URLs) and rendered values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.app.metrics import ENDPOINTS, Metrics, acme_endpoint
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.renewal.readiness import CertificateRow

PEBBLE = "https://127.0.0.1:14000"
BOULDER = "https://acme-v02.api.letsencrypt.org"


@pytest.mark.parametrize(("url", "endpoint"), [
    (f"{PEBBLE}/dir", "directory"),
    (f"{PEBBLE}/nonce-plz", "newNonce"),
    (f"{PEBBLE}/sign-me-up", "newAccount"),
    (f"{PEBBLE}/order-plz", "newOrder"),
    (f"{PEBBLE}/my-order/Xk3_9", "order"),
    (f"{PEBBLE}/authZ/abcDEF", "authz"),
    (f"{PEBBLE}/chalZ/abcDEF", "challenge"),
    (f"{PEBBLE}/finalize-order/Xk3_9", "finalize"),
    (f"{PEBBLE}/certZ/4f2a", "certificate"),
    (f"{PEBBLE}/certZ/4f2a/1", "certificate"),
    (f"{PEBBLE}/draft-ietf-acme-ari-03/renewalInfo/aaa.bbb", "renewalInfo"),
    (f"{PEBBLE}/my-account/1", "other"),
    (f"{BOULDER}/directory", "directory"),
    (f"{BOULDER}/acme/new-nonce", "newNonce"),
    (f"{BOULDER}/acme/new-acct", "newAccount"),
    (f"{BOULDER}/acme/new-order", "newOrder"),
    (f"{BOULDER}/acme/order/123/456", "order"),
    (f"{BOULDER}/acme/authz-v3/789", "authz"),
    (f"{BOULDER}/acme/authz/123/789", "authz"),
    (f"{BOULDER}/acme/chall-v3/789/Zm9v", "challenge"),
    (f"{BOULDER}/acme/chall/123/789/Zm9v", "challenge"),
    (f"{BOULDER}/acme/finalize/123/456", "finalize"),
    (f"{BOULDER}/acme/cert/03ab", "certificate"),
    (f"{BOULDER}/acme/renewal-info/aaa.bbb", "renewalInfo"),
    (f"{BOULDER}/acme/acct/123", "other"),
    (f"{BOULDER}/acme/revoke-cert", "other"),
    ("not a url", "other"),
])
def test_acme_endpoint(url: str, endpoint: str) -> None:
    assert acme_endpoint(url) == endpoint
    assert endpoint in ENDPOINTS


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_acme_requests_counted_with_bounded_labels() -> None:
    m = Metrics()
    m.observe_acme("pebble", RequestRecord("POST", f"{PEBBLE}/my-order/abc", 200, 0.004))
    m.observe_acme("pebble", RequestRecord("post", f"{PEBBLE}/my-order/def", 200, 0.02))
    m.observe_acme("le", RequestRecord("PATCH", f"{BOULDER}/acme/new-order", 0, 3.0))
    s = _samples(m)
    assert s[("certbotk8s_acme_requests_total", (("endpoint", "order"), ("issuer", "pebble"),
                                                 ("method", "POST"), ("status", "200")))] == 2
    assert s[("certbotk8s_acme_requests_total", (("endpoint", "newOrder"), ("issuer", "le"),
                                                 ("method", "other"), ("status", "0")))] == 1
    order = (("endpoint", "order"), ("issuer", "pebble"))
    assert s[("certbotk8s_acme_request_duration_seconds_count", order)] == 2
    assert s[("certbotk8s_acme_request_duration_seconds_bucket", (*order, ("le", "0.005")))] == 1
    assert s[("certbotk8s_acme_request_duration_seconds_bucket",
              (("endpoint", "newOrder"), ("issuer", "le"), ("le", "10.0")))] == 1


def _issuer(name: str) -> tuple[tuple[str, str], ...]:
    """cert-manager's issuer labels; a refused source (no issuer) has all three empty."""
    kind, group = ("ClusterIssuer", "certbotk8s.io") if name else ("", "")
    return (("issuer_group", group), ("issuer_kind", kind), ("issuer_name", name))


def test_certificate_series_published_marked_and_removed() -> None:
    m = Metrics()
    not_after = datetime(2026, 3, 1, tzinfo=UTC)
    issued = datetime(2025, 12, 1, tzinfo=UTC)
    renew = datetime(2026, 2, 1, tzinfo=UTC)
    m.publish_certificates([
        CertificateRow("web", "site-tls", "le", "True", not_after, renew, not_before=issued),
        CertificateRow("web", "new-tls", "le", "Unknown"),
        CertificateRow("shop", "bad-ingress", "", "False"),
    ])
    s = _samples(m)
    key = (*_issuer("le"), ("name", "site-tls"), ("namespace", "web"))
    assert s[("certbotk8s_certificate_expiration_timestamp_seconds", key)] == not_after.timestamp()
    assert s[("certbotk8s_certificate_renewal_timestamp_seconds", key)] == renew.timestamp()
    assert s[("certbotk8s_certificate_not_before_timestamp_seconds", key)] == issued.timestamp()
    for condition, value in (("True", 1), ("False", 0), ("Unknown", 0)):
        assert s[("certbotk8s_certificate_ready_status",
                  (("condition", condition), *key))] == value
    new = (*_issuer("le"), ("name", "new-tls"), ("namespace", "web"))
    assert s[("certbotk8s_certificate_ready_status", (("condition", "Unknown"), *new))] == 1
    assert ("certbotk8s_certificate_expiration_timestamp_seconds", new) not in s
    assert ("certbotk8s_certificate_not_before_timestamp_seconds", new) not in s
    refused = (*_issuer(""), ("name", "bad-ingress"), ("namespace", "shop"))
    assert s[("certbotk8s_certificate_ready_status", (("condition", "False"), *refused))] == 1

    m.mark_failed("web", "new-tls", 1)
    s = _samples(m)
    assert s[("certbotk8s_certificate_ready_status", (("condition", "False"), *new))] == 1
    assert s[("certbotk8s_certificate_ready_status", (("condition", "Unknown"), *new))] == 0
    assert s[("certbotk8s_certificate_failed_attempts", new)] == 1

    m.publish_certificates([CertificateRow("web", "new-tls", "le", "False", failures=1)])
    s = _samples(m)
    assert not [k for k in s if k[1] in (key, refused) or key[1:] == k[1][1:]]
    assert s[("certbotk8s_certificate_ready_status", (("condition", "False"), *new))] == 1


def test_process_metrics_are_exported() -> None:
    assert any(k[0].startswith("process_") for k in _samples(Metrics()))
    assert not any(k[0].startswith("process_") for k in _samples(Metrics(process=False)))


def test_controller_metrics_rendered() -> None:
    m = Metrics()
    m.challenge(ChallengeType.HTTP01, "valid")
    m.challenge("dns-01", "invalid")
    m.set_rate_limit_holds("certificatesPerDomain", 2)
    m.count_rate_limit_hold("certificatesPerDomain")
    m.set_leader(True)
    m.set_managed_certificates(7)
    m.observe_reconcile(0.3)
    with m.order_in_flight():
        assert _samples(m)[("certbotk8s_orders_in_flight", ())] == 1
    s = _samples(m)
    assert s[("certbotk8s_orders_in_flight", ())] == 0
    assert s[("certbotk8s_challenges_total", (("outcome", "valid"), ("type", "http-01")))] == 1
    assert s[("certbotk8s_challenges_total", (("outcome", "invalid"), ("type", "dns-01")))] == 1
    assert s[("certbotk8s_rate_limit_holds", (("limit", "certificatesPerDomain"),))] == 2
    assert s[("certbotk8s_rate_limit_holds_total", (("limit", "certificatesPerDomain"),))] == 1
    assert s[("certbotk8s_leader", ())] == 1
    assert s[("certbotk8s_managed_certificates", ())] == 7
    assert s[("certbotk8s_reconcile_duration_seconds_count", ())] == 1


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.set_leader(True)
    assert b"certbotk8s_leader 0.0" in b.render()
