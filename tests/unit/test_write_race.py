"""A Secret write answered 409: core.state.write_race decides (write ours again or keep another
writer's newer certificate) and app.orders.store carries it out, against a fake SecretStore."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbotk8s.app.orders import PassDeps, api_away, store, unwritten_cause
from certbotk8s.app.records import Records
from certbotk8s.core.errors import (
    Http01SolverError,
    KubeConflict,
    KubeServerError,
    KubeUnreachable,
    OrderAbandoned,
)
from certbotk8s.core.model import (
    CertificateInfo,
    DesiredCertificate,
    IssuedCertificate,
    KeyType,
)
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.write_race import AfterConflict, after_conflict, unwritten_unusable
from tests.unit.factories import T0, cert_info, desired, make_config, observed_for

NOW = T0 + timedelta(days=10)


def _info(serial: str, *sans: str, not_before: datetime = T0,
          key_type: KeyType = KeyType.ECDSA_P256) -> CertificateInfo:
    return replace(cert_info(*sans, not_before=not_before, key_type=key_type), serial=serial)


D = desired("a.example.com")
OLD = _info("01", "a.example.com")  # 90 days from T0: not due at NOW
OURS = _info("02", "a.example.com", not_before=NOW)
SEEN = observed_for(D, OLD)


def _decide(fresh_info: CertificateInfo | None, *, managed: bool = True,
            seen: Any = SEEN, d: DesiredCertificate = D, fresh_missing: bool = False) -> Any:
    fresh = None if fresh_missing else observed_for(d, fresh_info, managed=managed)
    if fresh is not None and fresh_info is None:
        fresh = replace(fresh, certificate=None, parse_error="missing tls.crt")
    return after_conflict(d, seen, fresh, OURS, NOW)


def test_a_newer_certificate_that_needs_nothing_is_kept() -> None:
    theirs = _info("03", "a.example.com", not_before=NOW - timedelta(minutes=1))
    decision = _decide(theirs)
    assert decision.kind is AfterConflict.KEEP_THEIRS
    assert "serial 03" in decision.message and "serial 02" in decision.message


def test_the_same_old_certificate_with_other_changes_is_written_over() -> None:
    assert _decide(OLD).kind is AfterConflict.WRITE


def test_a_newer_certificate_for_other_hosts_is_written_over() -> None:
    decision = _decide(_info("03", "b.example.com", not_before=NOW))
    assert decision.kind is AfterConflict.WRITE and "hosts added" in decision.message


def test_a_newer_certificate_for_the_hosts_the_source_wants_now_is_kept() -> None:
    # The source changed during our order (ours is for its old hosts); the other writer
    # already stored a certificate for the new ones.
    now_wanted = desired("a.example.com", "b.example.com")
    theirs = _info("03", "a.example.com", "b.example.com", not_before=NOW)
    fresh = observed_for(now_wanted, theirs)
    assert after_conflict(D, SEEN, fresh, OURS, NOW).kind is AfterConflict.WRITE
    assert after_conflict(D, SEEN, fresh, OURS, NOW, now_wanted).kind is AfterConflict.KEEP_THEIRS


def test_a_newer_certificate_for_hosts_the_source_no_longer_wants_is_written_over() -> None:
    now_wanted = desired("a.example.com", "b.example.com")
    theirs = _info("03", "a.example.com", not_before=NOW)
    decision = after_conflict(D, SEEN, observed_for(D, theirs), OURS, NOW, now_wanted)
    assert decision.kind is AfterConflict.WRITE and "hosts added" in decision.message


def test_a_newer_certificate_of_another_key_type_is_written_over() -> None:
    theirs = _info("03", "a.example.com", not_before=NOW, key_type=KeyType.RSA_2048)
    assert _decide(theirs).kind is AfterConflict.WRITE


def test_a_different_certificate_that_is_itself_due_is_written_over() -> None:
    # Issued 80 of 90 days ago: past the renewal time of the one core.renewal.moment decision.
    theirs = _info("03", "a.example.com", not_before=NOW - timedelta(days=80))
    decision = _decide(theirs)
    assert decision.kind is AfterConflict.WRITE and "needs replacing too" in decision.message


def test_an_unparsable_certificate_is_written_over() -> None:
    assert _decide(None).kind is AfterConflict.WRITE


def test_a_deleted_secret_is_created_again() -> None:
    assert _decide(None, fresh_missing=True).kind is AfterConflict.WRITE


def test_a_secret_taken_over_by_another_owner_is_refused() -> None:
    theirs = _info("03", "a.example.com", not_before=NOW)
    assert _decide(theirs, managed=False).kind is AfterConflict.REFUSE


def test_our_own_certificate_already_there_is_not_written_twice() -> None:
    assert _decide(OURS).kind is AfterConflict.ALREADY_OURS


def test_a_first_issuance_raced_by_a_good_certificate_keeps_it() -> None:
    # No Secret when the order was decided; another writer created one since.
    theirs = _info("03", "a.example.com", not_before=NOW)
    assert _decide(theirs, seen=None).kind is AfterConflict.KEEP_THEIRS


def test_a_newer_certificate_with_an_unanswered_renewal_request_is_written_over() -> None:
    theirs = _info("03", "a.example.com", not_before=NOW - timedelta(hours=2))
    fresh = replace(observed_for(D, theirs), renew_requested=secret_meta.format_time(
        NOW - timedelta(hours=1)))
    fresh.recorded[secret_meta.ISSUED_AT] = secret_meta.format_time(NOW - timedelta(hours=2))
    assert after_conflict(D, SEEN, fresh, OURS, NOW).kind is AfterConflict.WRITE


# -- store(): the adapter side of it ------------------------------------------------------


def _pem(serial: int, host: str, not_before: datetime) -> tuple[bytes, bytes]:
    key = keys.generate_key(KeyType.ECDSA_P256)
    ca = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_before + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           False)
            .sign(ca, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), keys.key_to_pem(key)


class RacedSecrets:
    """A Secret another writer changes before our first write (409), then as `fresh` holds."""

    def __init__(self, fresh: StoredSecret) -> None:
        self.fresh = fresh
        self.writes: list[tuple[str | None, dict[str, str]]] = []
        self.patches: list[dict[str, str | None]] = []

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        return self.fresh

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        self.writes.append((resource_version, dict(annotations)))
        if resource_version != self.fresh.resource_version:
            raise KubeConflict("conflict: the object has been modified")
        return "99"

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        self.patches.append(dict(annotations))


def _stored(crt: bytes, key: bytes, history: str) -> StoredSecret:
    info = certs.certificate_info(crt)
    annotations = secret_meta.build_secret_metadata(D, info, info.not_before).annotations
    annotations[secret_meta.ISSUANCE_HISTORY] = history
    return StoredSecret("default", "web-tls", "8", "kubernetes.io/tls",
                        labels={secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE},
                        annotations=annotations, data={"tls.crt": crt, "tls.key": key})


def _deps(secrets: RacedSecrets, now: datetime, history: str = "") -> PassDeps:
    """The records hold `history` for the Secret (what the controller issued into it)."""
    none = cast(Any, None)
    records = Records()
    if history:
        records.update(D.secret, {secret_meta.ISSUANCE_HISTORY: history})
    return PassDeps(make_config(), none, secrets, none, none, none, clock=lambda: now,
                    records=records)


def _issued(serial: int, now: datetime) -> IssuedCertificate:
    crt, key = _pem(serial, "a.example.com", now)
    return IssuedCertificate(key, crt, certs.certificate_info(crt), "https://ca/order/1")


def test_store_keeps_a_newer_good_certificate_and_records_our_issuance() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old_crt, _ = _pem(0x11, "a.example.com", now - timedelta(days=80))
    seen = observed_for(D, certs.certificate_info(old_crt))
    their_crt, their_key = _pem(0x33, "a.example.com", now - timedelta(seconds=5))
    theirs_at = secret_meta.format_time(now - timedelta(seconds=5))
    secrets = RacedSecrets(_stored(their_crt, their_key, theirs_at))
    ours = _issued(0x22, now)
    deps = _deps(secrets, now, history=theirs_at)
    result = store(deps, D, ours, seen)
    assert result.kept is not None and result.kept.serial == "33"
    assert "serial 33" in result.message and "serial 22" in result.message
    assert [version for version, _ in secrets.writes] == ["1"]  # the one refused write only
    # Both issuances stay in the history the rate-limit budget reads (the record's).
    assert deps.records.get(D.secret)[secret_meta.ISSUANCE_HISTORY] == (
        f"{theirs_at},{secret_meta.format_time(now)}")
    assert secrets.patches == []


def test_store_writes_over_the_same_old_certificate_on_the_fresh_version() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old_crt, old_key = _pem(0x11, "a.example.com", now - timedelta(days=80))
    earlier = secret_meta.format_time(now - timedelta(days=1))
    secrets = RacedSecrets(_stored(old_crt, old_key, earlier))
    seen = observed_for(D, certs.certificate_info(old_crt), annotations={})
    deps = _deps(secrets, now, history=earlier)
    result = store(deps, D, _issued(0x22, now), seen)
    assert result.kept is None
    assert [version for version, _ in secrets.writes] == ["1", "8"]
    # The recorded history goes on, into the record and the Secret's display copy.
    both = f"{earlier},{secret_meta.format_time(now)}"
    assert secrets.writes[-1][1][secret_meta.ISSUANCE_HISTORY] == both
    assert deps.records.get(D.secret)[secret_meta.ISSUANCE_HISTORY] == both
    assert secrets.patches == []


def test_store_refuses_a_secret_that_became_foreign() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    crt, key = _pem(0x33, "a.example.com", now)
    secrets = RacedSecrets(replace(_stored(crt, key, ""), labels={}))
    with pytest.raises(KubeConflict, match="not overwritten"):
        store(_deps(secrets, now), D, _issued(0x22, now), SEEN)
    assert len(secrets.writes) == 1


# --- a certificate issued but never written (API server away) ---------------------------------


def test_an_unwritten_certificate_for_the_same_spec_that_needs_nothing_may_be_written() -> None:
    assert unwritten_unusable(D, D.spec, OURS, NOW + timedelta(minutes=5)) is None


def test_an_unwritten_certificate_is_dropped_when_the_source_asks_for_something_else() -> None:
    wider = desired("a.example.com", "b.example.com")
    why = unwritten_unusable(wider, D.spec, OURS, NOW)
    assert why == "what the source asks for changed since it was ordered"
    rsa = replace(D, spec=replace(D.spec, key_type=KeyType.RSA_2048))
    assert unwritten_unusable(rsa, D.spec, OURS, NOW) is not None


def test_an_unwritten_certificate_that_is_itself_due_is_dropped() -> None:
    # 90 days from NOW: at day 85 it is due (or expired) and no better than a new order.
    assert unwritten_unusable(D, D.spec, OURS, NOW + timedelta(days=85)) is not None
    assert unwritten_unusable(D, D.spec, OURS, NOW + timedelta(days=91)) is not None


def _raised(error: Exception, cause: BaseException | None) -> Exception:
    try:
        raise error from cause
    except Exception as e:
        return e


def test_the_api_server_away_is_seen_behind_another_error_and_a_refusal_is_not() -> None:
    away = KubeUnreachable("create secrets a/b failed: API server unreachable", "refused")
    assert api_away(away) and unwritten_cause(away)
    assert api_away(KubeServerError("update secrets a/b failed: HTTP 503: storage"))
    routing = _raised(Http01SolverError("cannot publish HTTP-01 routing for a.example"), away)
    assert api_away(routing)
    assert not api_away(KubeConflict("conflict")) and not unwritten_cause(KubeConflict("c"))
    assert not api_away(_raised(Http01SolverError("no port"), None))
    assert unwritten_cause(OrderAbandoned("no longer the leader"))
