"""Which certificate a new order names in ARI's `replaces` (RFC 9773), if any: one rule for the
order itself and for the budget that decides whether the order is exempt from the CA's limits.

Let's Encrypt exempts (and counts against no limit) an order that names the certificate it
replaces, as long as the two share at least one name and the old one is not replaced already
(the CA's `alreadyReplaced` refusal: the order then goes again without `replaces`).
"""

from __future__ import annotations

from collections.abc import Iterable

from certbotk8s.core.budget.ratelimit import identifier_set
from certbotk8s.core.model import DesiredCertificate, ObservedSecret
from certbotk8s.core.state import secret_meta


def shares_a_name(old: Iterable[str], new: Iterable[str]) -> bool:
    """At least one name in both (as the CA compares them: case-insensitive, no final dot)."""
    return bool(set(identifier_set(old)) & set(identifier_set(new)))


def replaced_cert_id(renewing: bool, desired: DesiredCertificate,
                     observed: ObservedSecret | None) -> str | None:
    """The ARI CertID the order for `desired` names in `replaces`, or None: only for a renewal
    (`renewing`) of a certificate from the same issuer that shares at least one name with the
    names wanted now."""
    if not renewing or observed is None or observed.certificate is None:
        return None
    old = observed.certificate
    if not old.ari_cert_id or observed.recorded.get(secret_meta.ISSUER) != desired.spec.issuer:
        return None
    return old.ari_cert_id if shares_a_name(old.sans, desired.spec.hosts) else None
