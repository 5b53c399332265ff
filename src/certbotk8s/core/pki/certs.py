"""Reading what a PEM certificate chain says about itself (pure, no network)."""

from __future__ import annotations

import base64
import math

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbotk8s.core.model import CertificateInfo
from certbotk8s.core.pki.keys import PrivateKey, key_type_of
from certbotk8s.core.state.secret_meta import EARLIEST, LATEST


class CertificateParseError(ValueError):
    """The PEM data is not a certificate chain we can read."""


def split_pem_chain(fullchain_pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(fullchain_pem)
    except Exception as e:  # ValueError, or anything else cryptography raises on hostile bytes
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
    """Facts about the leaf (the first certificate) of a PEM chain.

    Secrets are tenant-writable: whatever cryptography raises on the bytes (a duplicate
    extension, an unknown key algorithm, a malformed field) becomes CertificateParseError, and
    so does a validity outside the years secret_meta accepts (arithmetic on it stays safe)."""
    leaf = split_pem_chain(fullchain_pem)[0]
    try:
        info = _leaf_info(leaf)
    except Exception as e:  # cryptography raises more than ValueError (DuplicateExtension, ...)
        raise CertificateParseError(f"unreadable certificate: {type(e).__name__}") from e
    if not (EARLIEST <= info.not_before <= info.not_after < LATEST):
        raise CertificateParseError(
            f"unreadable certificate: validity {info.not_before:%Y-%m-%d} .. "
            f"{info.not_after:%Y-%m-%d} is outside {EARLIEST:%Y} .. {LATEST:%Y}")
    return info


def _leaf_info(leaf: x509.Certificate) -> CertificateInfo:
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
    """Whether `key` is the leaf's key; CertificateParseError when the leaf's key is unreadable
    (the message names neither key)."""
    leaf = split_pem_chain(fullchain_pem)[0]
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    try:
        theirs = leaf.public_key().public_bytes(enc, fmt)
    except Exception as e:  # UnsupportedAlgorithm and friends
        raise CertificateParseError(
            f"unreadable certificate public key: {type(e).__name__}") from e
    return bool(key.public_key().public_bytes(enc, fmt) == theirs)
