"""Reading what a PEM certificate chain says about itself (pure, no network)."""

from __future__ import annotations

import base64
import math

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbotk8s.core.keys import PrivateKey, key_type_of
from certbotk8s.core.model import CertificateInfo


class CertificateParseError(ValueError):
    """The PEM data is not a certificate chain we can read."""


def split_pem_chain(fullchain_pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(fullchain_pem)
    except ValueError as e:
        raise CertificateParseError(f"not a PEM certificate chain: {e}") from e
    if not certs:
        raise CertificateParseError("no certificate in PEM data")
    return certs


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def ari_cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 CertID: base64url(authorityKeyIdentifier) "." base64url(DER serial)."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound as e:
        raise CertificateParseError("certificate has no authorityKeyIdentifier") from e
    if aki.key_identifier is None:
        raise CertificateParseError("authorityKeyIdentifier has no keyIdentifier")
    serial = cert.serial_number
    # ASN.1 INTEGER: big-endian two's complement, one extra bit for the sign.
    serial_bytes = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), "big", signed=True)
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_bytes)}"


def certificate_info(fullchain_pem: bytes) -> CertificateInfo:
    """Facts about the leaf (the first certificate) of a PEM chain."""
    leaf = split_pem_chain(fullchain_pem)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(sorted(str(n).lower() for n in san.get_values_for_type(x509.DNSName)))
    except x509.ExtensionNotFound:
        sans = ()
    try:
        cert_id = ari_cert_id(leaf)
    except CertificateParseError:
        cert_id = ""
    return CertificateInfo(
        sans=sans,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        serial=format(leaf.serial_number, "x"),
        key_type=key_type_of(leaf.public_key()),
        ari_cert_id=cert_id,
    )


def key_matches_certificate(key: PrivateKey, fullchain_pem: bytes) -> bool:
    leaf = split_pem_chain(fullchain_pem)[0]
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(enc, fmt) == leaf.public_key().public_bytes(enc, fmt))
