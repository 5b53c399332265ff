"""Hostile tenant Secrets for unit tests: odd certificates and keys (built once) and in-memory
fakes of the ports `run_pass` and the `Reconciler` use."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.controller.cert_state import StateTable
from certbotk8s.app.controller.reconciler import Reconciler
from certbotk8s.app.controller.work_queue import KeyedWorkQueue
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import PassDeps
from certbotk8s.app.records import Records
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import (
    DesiredCertificate,
    Discovery,
    IssuedCertificate,
    ObjectRef,
    ObservedSecret,
    SecretRef,
)
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import SourceSnapshot, StoredSecret
from certbotk8s.core.renewal.plan import Action
from certbotk8s.core.sources.ownership import discover_owned, holdings
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import TLS_CERT, TLS_KEY, observe, with_record

from .factories import T0

_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
IAN_OID = bytes.fromhex("0603551d12")  # DER of OID 2.5.29.18 (issuerAltName)
SAN_OID = bytes.fromhex("0603551d11")  # DER of OID 2.5.29.17 (subjectAltName)
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0209")  # 1.2.840.10045.2.9: no such algorithm


def _der(public_key: Any, *extensions: x509.ExtensionType, hosts: Sequence[str] = (),
         not_before: datetime = T0, not_after: datetime = T0 + timedelta(days=90)) -> bytes:
    ca = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile test CA")])
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca)
               .public_key(public_key).serial_number(0x1234)
               .not_valid_before(not_before).not_valid_after(not_after))
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        _ISSUER_KEY.public_key()), critical=False)
    return builder.sign(_ISSUER_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def pem_of(public_key: Any, *, hosts: Sequence[str], not_before: datetime,
           not_after: datetime) -> bytes:
    """A PEM leaf for `public_key` from the "hostile test CA" (not the fake ACME CA)."""
    return _pem(_der(public_key, hosts=hosts, not_before=not_before, not_after=not_after))


@functools.cache
def leaf_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def leaf_key_pem() -> bytes:
    return keys.key_to_pem(leaf_key())


@functools.cache
def good_pem(*hosts: str) -> bytes:
    return _pem(_der(leaf_key().public_key(), hosts=hosts or ("a.example.com",)))


@functools.cache
def duplicate_san_pem() -> bytes:
    """Two subjectAltName extensions (an issuerAltName whose OID is patched to SAN's)."""
    der = _der(leaf_key().public_key(),
               x509.IssuerAlternativeName([x509.DNSName("b.example.com")]),
               hosts=("a.example.com",))
    assert der.count(IAN_OID) == 1
    return _pem(der.replace(IAN_OID, SAN_OID))


@functools.cache
def unknown_key_algorithm_pem() -> bytes:
    """A leaf whose SubjectPublicKeyInfo names an algorithm OID nobody knows."""
    der = _der(leaf_key().public_key(), hosts=("a.example.com",))
    assert der.count(EC_PUBLIC_KEY_OID) == 1
    return _pem(der.replace(EC_PUBLIC_KEY_OID, UNKNOWN_KEY_OID))


@functools.cache
def ed25519_pem() -> bytes:
    return _pem(_der(ed25519.Ed25519PrivateKey.generate().public_key(), hosts=("a.example.com",)))


@functools.cache
def far_future_pem() -> bytes:
    """Valid until 9999-12-31 (GeneralizedTime): arithmetic near datetime's limit."""
    return _pem(_der(leaf_key().public_key(), hosts=("a.example.com",),
                     not_after=datetime(9999, 12, 31, 23, 59, 59)))


@functools.cache
def ed25519_key_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@functools.cache
def encrypted_key_pem() -> bytes:
    return leaf_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-passphrase"))


# -- fakes of the ports ----------------------------------------------------------------------


class Sources:
    def __init__(self, ingresses: Sequence[dict[str, Any]]) -> None:
        self.ingresses = tuple(ingresses)

    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        return SourceSnapshot(ingresses=self.ingresses)


class Secrets:
    """Secrets in memory; writes are recorded and succeed."""

    def __init__(self, stored: Sequence[StoredSecret]) -> None:
        self.by_ref = {SecretRef(s.namespace, s.name): s for s in stored}
        self.written: list[SecretRef] = []

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        return self.by_ref.get(SecretRef(namespace, name))

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        self.written.append(SecretRef(namespace, name))
        return "2"

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        pass


@dataclass
class Events:
    posted: list[tuple[ObjectRef, str, str, str]] = field(default_factory=list)

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        self.posted.append((obj, type, reason, message))

    def reasons(self) -> set[str]:
        return {reason for _, _, reason, _ in self.posted}


@dataclass(frozen=True)
class _Issuer:
    preferred_chain: str | None = None


class Engine:
    """Issues the same good certificate for any order."""

    def issue(self, request: Any, solvers: Any, on_order: Any = None,
              keep_going: Any = None) -> IssuedCertificate:
        return issued()


@functools.cache
def issued() -> IssuedCertificate:
    pem = good_pem("victim.example.com")
    return IssuedCertificate(leaf_key_pem(), pem, certs.certificate_info(pem), "https://o/1")


class Issuers:
    def issuer(self, name: str) -> _Issuer:
        return _Issuer()

    def engine(self, name: str) -> Engine:
        return Engine()


class Solvers:
    def for_order(self, *args: Any) -> list[Any]:
        return []


def pass_deps(config: Config, ingresses: Sequence[dict[str, Any]],
              stored: Sequence[StoredSecret], now: datetime = T0) -> PassDeps:
    fake: Any = (Issuers(), Solvers())
    return PassDeps(config, Sources(ingresses), Secrets(stored), Events(), fake[0], fake[1],
                    clock=lambda: now)


def no_probe(url: str, verify: bool | str) -> str | None:
    return None  # every CA answers (no network in unit tests)


# -- the controller's reconciler over fakes -----------------------------------------------


class _Cache:
    def __init__(self, observed: dict[SecretRef, ObservedSecret | None]) -> None:
        self.cache = {ref: o for ref, o in observed.items() if o is not None}


class Watch:
    """The informer caches as the reconciler reads them: sources and observed Secrets."""

    def __init__(self, ingresses: Sequence[dict[str, Any]], stored: Sequence[StoredSecret],
                 adopt_cert_manager: bool = False) -> None:
        self.ingresses = list(ingresses)
        # cert-manager's Secrets are watched (and writable) under config `migration` only
        self.seen = {SecretRef(s.namespace, s.name): observe(s, adopt_cert_manager)
                     for s in stored}
        self.secrets = _Cache(dict(self.seen))
        self.records = Records()  # the controller's own records: tenants write none
        self.namespaces: tuple[str, ...] = ()

    def discovery(self, config: Config) -> Discovery:
        held = holdings(self.records.snapshot(), T0, config.tenants.claim_grace)
        return discover_owned(self.ingresses, [], [], [], config, held)

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        return with_record(self.seen.get(ref), self.records.get(ref))

    def managed(self) -> list[tuple[SecretRef, ObservedSecret]]:
        return [(ref, seen) for ref, seen in self.seen.items() if seen.managed]


class Schedule:
    """app.controller.work_queue.Timer that only records each job's moment (nothing fires)."""

    def __init__(self) -> None:
        self.when: dict[str, datetime] = {}

    def at(self, name: str, when: datetime, fire: Callable[[], None]) -> None:
        self.when[name] = when

    def cancel(self, name: str) -> None:
        self.when.pop(name, None)


class Runner:
    """Records the orders handed over; no gates."""

    def __init__(self) -> None:
        self.submitted: list[DesiredCertificate] = []
        self.gates: tuple[Any, ...] = ()

    def order(self, action: Action) -> None:
        self.submitted.append(action.desired)

    def write_metadata(self, action: Action, observed: ObservedSecret | None) -> None:
        pass

    def namespace_deleting(self, namespace: str) -> bool:
        return False


class Leader:
    def start(self) -> None:
        pass

    def is_leader(self) -> bool:
        return True

    def stop(self, release: bool = True) -> None:
        pass


class InlineReconciler:
    """A Reconciler whose `reconcile` runs the pass, then every key it queued on this thread
    (as one worker of the controller would)."""

    def __init__(self, inner: Reconciler, queue: KeyedWorkQueue[SecretRef]) -> None:
        self.inner, self.queue = inner, queue

    def reconcile(self, now: datetime) -> None:
        self.inner.reconcile(now)
        while (ref := self.queue.get(timeout=0)) is not None:
            try:
                self.inner.process(ref)
            finally:
                self.queue.done(ref)


def reconciler(deps: PassDeps, watch: Watch, runner: Runner, schedule: Schedule,
               metrics: Metrics) -> InlineReconciler:
    watch.records = deps.records  # one memory, as the controller wires it
    queue: KeyedWorkQueue[SecretRef] = KeyedWorkQueue(schedule)
    loose: Any = (watch, runner)
    return InlineReconciler(Reconciler(deps, loose[0], StateTable(), queue, loose[1],
                                       RenewalBook(deps.config, deps.records, None), Leader(),
                                       metrics, threading.Event()), queue)


def stored_secret(namespace: str, name: str, crt: bytes | None = None, key: bytes | None = None,
                  annotations: dict[str, str] | None = None, managed: bool = True,
                  ) -> StoredSecret:
    data = {k: v for k, v in ((TLS_CERT, crt), (TLS_KEY, key)) if v is not None}
    labels = {secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE} if managed else {}
    return StoredSecret(namespace, name, "1", "kubernetes.io/tls", labels=labels,
                        annotations=dict(annotations or {}), data=data)


NOW = datetime(2025, 2, 1, tzinfo=UTC)
