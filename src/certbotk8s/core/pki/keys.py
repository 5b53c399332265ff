"""Private keys and CSRs: a fresh key for every issuance, in the requested type."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certbotk8s.core.model import KeyType

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.ECDSA_P256: ec.SECP256R1(),
    KeyType.ECDSA_P384: ec.SECP384R1(),
}


def generate_key(key_type: KeyType) -> PrivateKey:
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type])
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def key_type_of(public_key: object) -> KeyType | None:
    """The KeyType of a public key, or None for anything we do not issue."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for key_type, curve in _CURVES.items():
            if public_key.curve.name == curve.name:
                return key_type
        return None
    if isinstance(public_key, rsa.RSAPublicKey):
        for key_type, bits in _RSA_BITS.items():
            if public_key.key_size == bits:
                return key_type
    return None


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the form `kubernetes.io/tls` Secrets carry."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pem(data: bytes) -> PrivateKey:
    """An EC or RSA private key from PEM; ValueError for anything else. cryptography raises
    more than ValueError on hostile bytes (TypeError for an encrypted key, UnsupportedAlgorithm
    for an unknown one): all become one ValueError whose message and cause hold nothing of the
    key."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception:
        key = None  # the cause is dropped: its text may describe the key
    if key is None:
        raise ValueError("not a readable private key")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("unsupported private key type")
    return key


def make_csr(key: PrivateKey, hosts: tuple[str, ...]) -> bytes:
    """A PEM CSR with every host as a dNSName SAN and an empty subject.

    The subject is left empty (as Let's Encrypt now issues): the names live only in the SANs,
    and a CN would limit names to 64 characters.
    """
    if not hosts:
        raise ValueError("a CSR needs at least one host")
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_hosts(csr_pem: bytes) -> tuple[str, ...]:
    csr = x509.load_pem_x509_csr(csr_pem)
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return tuple(san.get_values_for_type(x509.DNSName))


def subject_common_name(csr_pem: bytes) -> str | None:
    csr = x509.load_pem_x509_csr(csr_pem)
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
