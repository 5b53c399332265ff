"""Per-certificate Ready condition rows: issued, never issued, failing, refused, conflicting."""

from __future__ import annotations

from datetime import timedelta

from certbotk8s.core.model import (
    DesiredCertificate,
    ObjectRef,
    ObservedSecret,
    SecretRef,
    SourceProblem,
)
from certbotk8s.core.renewal.plan import plan
from certbotk8s.core.renewal.readiness import FALSE, TRUE, UNKNOWN, CertificateRow, certificate_rows
from tests.unit.factories import T0, cert_info, desired, observed_for

NOW = T0 + timedelta(days=1)


def _rows(wanted: list[DesiredCertificate], observed: dict[SecretRef, ObservedSecret | None],
          failures: dict[SecretRef, int] | None = None,
          problems: tuple[SourceProblem, ...] = ()) -> dict[tuple[str, str, str], CertificateRow]:
    actions = plan(wanted, observed, NOW, {})
    return {(r.namespace, r.name, r.issuer): r
            for r in certificate_rows(actions, observed, problems, failures or {}, NOW)}


def test_issued_certificate_is_ready_with_expiry_and_renewal() -> None:
    d = desired("a.example.com")
    row = _rows([d], {d.secret: observed_for(d)})[("default", "web-tls", "le")]
    assert row.condition == TRUE
    assert row.not_after == T0 + timedelta(days=90)
    assert row.not_before == T0  # with not_after, the lifetime the expiry alerts measure by
    assert row.renewal is not None and row.renewal > NOW
    assert row.failures == 0


def test_first_issuance_is_unknown_until_an_attempt_fails() -> None:
    d = desired("a.example.com")
    assert _rows([d], {d.secret: None})[("default", "web-tls", "le")].condition == UNKNOWN
    failed = _rows([d], {d.secret: None}, {d.secret: 2})[("default", "web-tls", "le")]
    assert (failed.condition, failed.failures, failed.not_after) == (FALSE, 2, None)
    assert failed.renewal == NOW  # due now; the controller passes its retry time instead


def test_host_change_renewal_is_not_ready() -> None:
    d = desired("a.example.com", "b.example.com")
    old = observed_for(desired("a.example.com"))
    assert _rows([d], {d.secret: old})[("default", "web-tls", "le")].condition == FALSE


def test_timed_renewal_keeps_ready_until_it_fails_and_the_cert_expires() -> None:
    d = desired("a.example.com")
    due = observed_for(d, cert_info("a.example.com", not_before=NOW - timedelta(days=70)))
    assert _rows([d], {d.secret: due})[("default", "web-tls", "le")].condition == TRUE
    failing = _rows([d], {d.secret: due}, {d.secret: 1})[("default", "web-tls", "le")]
    assert failing.condition == FALSE and failing.failures == 1
    expired = observed_for(d, cert_info("a.example.com", not_before=NOW - timedelta(days=91)))
    assert _rows([d], {d.secret: expired})[("default", "web-tls", "le")].condition == FALSE


def test_refused_sources_and_foreign_secrets_are_not_ready() -> None:
    d = desired("a.example.com")
    foreign = observed_for(d, managed=False)
    problem = SourceProblem(ObjectRef("networking.k8s.io/v1", "Ingress", "shop", "bad"),
                            "InvalidAnnotation", "certbotk8s.io/key-type: 'dsa'")
    config_problem = SourceProblem(ObjectRef("v1", "Config", "", "config"), "X", "y")
    rows = _rows([d], {d.secret: foreign}, problems=(problem, config_problem))
    assert rows[("default", "web-tls", "le")].condition == FALSE
    assert rows[("shop", "bad", "")].condition == FALSE
    assert len(rows) == 2


def test_conflicting_sources_give_one_row_per_secret_and_the_worst_condition() -> None:
    a = desired("a.example.com", source_name="one")
    b = desired("b.example.com", source_name="two", secret=SecretRef("default", "web-tls"))
    rows = _rows([a, b], {a.secret: observed_for(a)})
    assert [r.condition for r in rows.values()] == [FALSE]
