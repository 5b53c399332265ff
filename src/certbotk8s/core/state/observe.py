"""StoredSecret (what the API returned) -> ObservedSecret (what policy reasons about). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from certbotk8s.core.model import CertificateInfo, ObservedSecret, SecretRef
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.state import secret_meta

TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"


def observe(stored: StoredSecret) -> ObservedSecret:
    """Parse the certificate and check the key matches; problems become `parse_error`.

    Nothing of the Secret's annotations is taken as a fact (`recorded` stays empty: the caller
    joins the controller's record, `with_record`); only a renewal request is kept. Never raises
    on what a tenant can write: unreadable bytes in tls.crt are a parse_error with no
    certificate, an unreadable tls.key one with the certificate; no message holds key
    material."""

    def result(info: CertificateInfo | None = None, key_matches: bool = False,
               error: str | None = None) -> ObservedSecret:
        return ObservedSecret(
            ref=SecretRef(stored.namespace, stored.name),
            managed=secret_meta.is_managed(stored.labels),
            resource_version=stored.resource_version,
            certificate=info,
            key_matches=key_matches,
            parse_error=error,
            renew_requested=stored.annotations.get(secret_meta.RENEW_REQUESTED_AT, "")[:64],
        )

    crt = stored.data.get(TLS_CERT)
    key_pem = stored.data.get(TLS_KEY)
    if not crt or not key_pem:
        missing = [k for k, v in ((TLS_CERT, crt), (TLS_KEY, key_pem)) if not v]
        return result(error=f"missing {', '.join(missing)}")
    try:
        info = certs.certificate_info(crt)
    except certs.CertificateParseError as e:
        return result(error=str(e))
    try:
        key = keys.load_key_pem(key_pem)
    except ValueError:
        # never echo the key or the parser's view of it
        return result(info, error="tls.key is not a readable private key")
    try:
        matches = certs.key_matches_certificate(key, crt)
    except certs.CertificateParseError as e:
        return result(error=str(e))
    return result(info, key_matches=matches)


def with_record(observed: ObservedSecret | None,
                record: Mapping[str, str]) -> ObservedSecret | None:
    """`observed` with the controller's record of that Secret joined in."""
    if observed is None:
        return None
    return replace(observed, recorded=dict(record))
