"""Adopting certificates certbotk8s did not issue (cert-manager's Secrets): no re-issue for the
key type, the issuer recorded only once the CA knows the certificate, another CA's reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from certbotk8s.core.model import CaVerdict, DesiredCertificate, KeyType, ObservedSecret
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.renewal.plan import ActionKind, plan
from certbotk8s.core.renewal.policy import ReasonCode, evaluate
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import TLS_CERT, TLS_KEY, observe, with_verdict
from tests.unit.factories import T0, cert_info, desired, observed_for
from tests.unit.hostile import good_pem, leaf_key_pem

DAY = timedelta(days=1)
CERT_MANAGER_LABELS = {"controller.cert-manager.io/fao": "true"}
CERT_MANAGER_ANNOTATIONS = {"cert-manager.io/issuer-name": "letsencrypt-prod",
                            "cert-manager.io/issuer-kind": "ClusterIssuer",
                            "cert-manager.io/certificate-name": "shop-tls"}


def _stored(labels: dict[str, str]) -> StoredSecret:
    return StoredSecret("web", "shop-tls", "7", "kubernetes.io/tls", labels=labels,
                        annotations=dict(CERT_MANAGER_ANNOTATIONS),
                        data={TLS_CERT: good_pem("a.example.com"), TLS_KEY: leaf_key_pem()})


def _adopted(verdict: CaVerdict = CaVerdict.UNCHECKED, key_type: KeyType = KeyType.RSA_2048,
             record: dict[str, str] | None = None,
             ) -> tuple[DesiredCertificate, ObservedSecret]:
    """A cert-manager certificate (RSA, 90 days, issued at T0) for the desired ECDSA one, with
    no record of certbotk8s's (or `record`)."""
    d = desired("a.example.com")
    info = replace(cert_info("a.example.com"), key_type=key_type, issuer="CN=R11,O=Let's Encrypt")
    seen = ObservedSecret(ref=d.secret, managed=True, resource_version="7", certificate=info,
                          key_matches=True, recorded=dict(record or {}),
                          claimed_issuer="letsencrypt-prod", ca_verdict=verdict)
    return d, seen


def test_cert_manager_secrets_are_writable_only_when_migrating() -> None:
    assert observe(_stored(CERT_MANAGER_LABELS), adopt_cert_manager=True).managed
    assert not observe(_stored(CERT_MANAGER_LABELS)).managed
    assert not observe(_stored({}), adopt_cert_manager=True).managed  # not cert-manager's
    seen = observe(_stored(CERT_MANAGER_LABELS), adopt_cert_manager=True)
    assert seen.claimed_issuer == "letsencrypt-prod"  # for messages; `recorded` stays empty
    assert seen.recorded == {}


def test_an_adopted_rsa_certificate_is_not_reissued_for_its_key_type() -> None:
    d, seen = _adopted()
    assert d.spec.key_type is KeyType.ECDSA_P256
    assert evaluate(d, seen, T0 + DAY, None) is None


def test_it_renews_at_its_normal_time_with_the_wanted_key_type() -> None:
    d, seen = _adopted(CaVerdict.KNOWN)
    (early,) = plan([d], {seen.ref: seen}, T0 + DAY, {})
    assert early.kind is ActionKind.REPAIR  # adopted: the record is written, no order
    assert early.annotations[secret_meta.ISSUER] == "le"
    assert early.annotations[secret_meta.KEY_TYPE] == KeyType.RSA_2048.value
    after = replace(seen, recorded=dict(early.annotations))
    assert early.next_renewal is not None
    (due,) = plan([d], {seen.ref: after}, early.next_renewal, {})
    assert due.kind is ActionKind.RENEW
    assert due.reason.code is ReasonCode.EXPIRING_LIFETIME_FRACTION
    # the renewal names the adopted certificate in ARI `replaces`
    assert seen.certificate is not None
    assert replaced_cert_id(True, d, after) == seen.certificate.ari_cert_id


def test_a_key_type_change_of_a_certificate_issued_here_still_reissues() -> None:
    d = desired("a.example.com")
    ours = observed_for(d, replace(cert_info("a.example.com"), key_type=KeyType.RSA_2048))
    reason = evaluate(d, ours, T0 + DAY, None)
    assert reason is not None and reason.code is ReasonCode.KEY_TYPE_CHANGED
    # a record of another serial (the Secret's certificate was replaced by someone else)
    other = replace(ours, recorded={**ours.recorded, secret_meta.SERIAL: "beef"})
    assert evaluate(d, other, T0 + DAY, None) is None


def test_until_the_ca_answers_no_issuer_is_recorded_and_no_replaces_sent() -> None:
    d, seen = _adopted(CaVerdict.UNCHECKED)
    (action,) = plan([d], {seen.ref: seen}, T0 + DAY, {})
    assert action.kind is ActionKind.REPAIR
    assert secret_meta.ISSUER not in action.annotations
    after = replace(seen, recorded=dict(action.annotations))
    (again,) = plan([d], {seen.ref: after}, T0 + DAY, {})
    assert again.kind is ActionKind.NOTHING  # nothing left to write: no repair loop
    assert replaced_cert_id(True, d, after) is None


def test_another_cas_certificate_is_reported_and_replaced_not_adopted() -> None:
    d, seen = _adopted(CaVerdict.UNKNOWN)
    (action,) = plan([d], {seen.ref: seen}, T0 + DAY, {})
    assert action.kind is ActionKind.RENEW
    assert action.reason.code is ReasonCode.FOREIGN_CERTIFICATE
    message = action.reason.message
    assert "CN=R11" in message and "'letsencrypt-prod' (not verified)" in message
    assert "issuer le" in message
    assert replaced_cert_id(True, d, seen) is None


def test_the_verdict_only_matters_for_certificates_not_recorded_as_ours() -> None:
    d = desired("a.example.com")
    ours = with_verdict(observed_for(d), CaVerdict.UNKNOWN)
    assert evaluate(d, ours, T0 + DAY, None) is None  # e.g. the CA forgot it: kept
