"""Key generation, CSR contents and certificate facts (pure, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certbotk8s.core.model import KeyType
from certbotk8s.core.pki import certs, keys


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generated_key_has_the_requested_type(key_type: KeyType) -> None:
    key = keys.generate_key(key_type)
    assert keys.key_type_of(key.public_key()) is key_type
    pem = keys.key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as kubernetes.io/tls holds
    assert keys.key_type_of(keys.load_key_pem(pem).public_key()) is key_type


def test_csr_carries_every_host_as_san_and_an_empty_subject() -> None:
    key = keys.generate_key(KeyType.ECDSA_P256)
    hosts = ("*.example.com", "example.com", "a-very-long-label-" + "x" * 40 + ".example.org")
    pem = keys.make_csr(key, hosts)
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    assert csr.subject == x509.Name([])
    assert keys.csr_hosts(pem) == hosts
    assert keys.subject_common_name(pem) is None
    assert csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_csr_needs_a_host() -> None:
    with pytest.raises(ValueError):
        keys.make_csr(keys.generate_key(KeyType.ECDSA_P256), ())


def _self_signed(serial: int, sans: list[str], days: int = 90,
                 key: keys.PrivateKey | None = None) -> tuple[bytes, keys.PrivateKey]:
    key = key or keys.generate_key(KeyType.ECDSA_P256)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def test_certificate_info_reads_leaf_facts() -> None:
    pem, key = _self_signed(0x87654321, ["B.example.com", "a.example.com"], days=6)
    info = certs.certificate_info(pem)
    assert info.sans == ("a.example.com", "b.example.com")
    assert info.lifetime == timedelta(days=6)
    assert info.serial == "87654321"
    assert info.key_type is KeyType.ECDSA_P256
    assert certs.key_matches_certificate(key, pem)
    assert not certs.key_matches_certificate(keys.generate_key(KeyType.ECDSA_P256), pem)


def test_ari_cert_id_encodes_serial_as_signed_der_integer() -> None:
    # RFC 9773 section 4.1 example: serial 0x87654321 needs a leading zero byte (sign bit)
    pem, _ = _self_signed(0x87654321, ["a.example.com"])
    aki, serial = certs.certificate_info(pem).ari_cert_id.split(".")
    assert serial == "AIdlQyE"
    assert "=" not in aki and len(aki) == 27  # 20-byte key id, base64url without padding


def test_unparsable_pem_is_a_parse_error() -> None:
    with pytest.raises(certs.CertificateParseError):
        certs.certificate_info(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(certs.CertificateParseError):
        certs.certificate_info(b"")


def test_rsa_key_type_detection() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert keys.key_type_of(key.public_key()) is None  # not a size we issue
