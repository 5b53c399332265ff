"""In-memory fakes of the controller's world for scenario tests: a cluster (Secrets with
resourceVersion conflicts, sources, a watch view that wakes on change), an ACME CA that issues
real certificates from a local CA, a clock, leadership, and a controller wired over them."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.controller.ari_refresh import AriRefresher
from certbotk8s.app.controller.cert_state import StateTable
from certbotk8s.app.controller.order_runner import OrderRunner
from certbotk8s.app.controller.reconciler import Reconciler
from certbotk8s.app.controller.work_queue import KeyedWorkQueue
from certbotk8s.app.inflight import RecordedInflight
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import PassDeps
from certbotk8s.app.records import Records
from certbotk8s.core.config.settings import Config, IssuerConfig
from certbotk8s.core.errors import (
    AcmeCaUnavailable,
    AcmeError,
    AriUnknownCertificate,
    KubeConflict,
    OrderAbandoned,
)
from certbotk8s.core.model import (
    CertificateInfo,
    Discovery,
    IssuedCertificate,
    KeyType,
    ObservedSecret,
    RenewalWindow,
    SecretRef,
)
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import SourceSnapshot, StoredSecret
from certbotk8s.core.renewal.ari_timing import AriReading
from certbotk8s.core.sources.discovery import trim_source
from certbotk8s.core.sources.ownership import discover_owned, failing_claims, holdings
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import (
    TLS_CERT,
    TLS_KEY,
    is_cert_manager_secret,
    observe,
    with_record,
)

from .fakes import FakeLedger, FakeRecordStore
from .hostile import Events, Solvers

TLS_TYPE = "kubernetes.io/tls"
LIFETIME = timedelta(days=90)


class FakeClock:
    """The time every part reads (deps.clock, the watch's claims, the CA): moves only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


class FakeLeader:
    """core.ports.LeaderElection whose lead a test flips (`leading`); start/stop never fail."""

    def __init__(self, leading: bool = True) -> None:
        self.leading = leading

    def start(self) -> None:
        pass

    def is_leader(self) -> bool:
        return self.leading

    def stop(self, release: bool = True) -> None:
        self.leading = False


class FakeTimer:
    """app.controller.work_queue.Timer on the fake clock: a job fires when `fire_due` runs at
    or after its moment (never by itself)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.jobs: dict[str, tuple[datetime, Callable[[], None]]] = {}

    def at(self, name: str, when: datetime, fire: Callable[[], None]) -> None:
        self.jobs[name] = (when, fire)

    def cancel(self, name: str) -> None:
        self.jobs.pop(name, None)

    def fire_due(self) -> None:
        due = sorted((when, name) for name, (when, _) in self.jobs.items()
                     if when <= self.clock())
        for _, name in due:
            _, fire = self.jobs.pop(name)
            fire()


# -- the cluster ------------------------------------------------------------------------------


class FakeCluster:
    """The API server for Secrets (core.ports.SecretStore) and sources (SourceReader).

    Every object write bumps a cluster-wide resourceVersion and sets `wake` (the informers'
    event). `write_tls` with a stale resourceVersion, or creating one that exists, raises
    `KubeConflict`; reads of a missing Secret are None; `set_annotations` on a missing one is a
    no-op. `before_write(ref)` runs just before a controller write is checked (another writer
    can change the Secret there); `broken_reads` makes `read` of a Secret raise.
    """

    def __init__(self) -> None:
        self.secrets: dict[SecretRef, StoredSecret] = {}
        self.ingresses: dict[tuple[str, str], dict[str, Any]] = {}
        self.wake = threading.Event()
        self.writes: list[SecretRef] = []  # write_tls calls that succeeded
        self.conflicts = 0
        self.before_write: Callable[[SecretRef], None] | None = None
        self.broken_reads: dict[SecretRef, Exception] = {}
        self._versions = itertools.count(100)

    def _bump(self) -> str:
        self.wake.set()
        return str(next(self._versions))

    # -- what tenants do ---------------------------------------------------------------------

    def add_ingress(self, obj: dict[str, Any], created: datetime) -> None:
        """Create a source (an Ingress or an Istio Gateway); the API server sets its
        creationTimestamp and uid."""
        meta = obj["metadata"]
        meta["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["uid"] = f"uid-{meta['namespace']}-{meta['name']}-{created.timestamp():.0f}"
        meta["resourceVersion"] = self._bump()
        self.ingresses[(meta["namespace"], meta["name"])] = obj

    def delete_ingress(self, namespace: str, name: str) -> None:
        self.ingresses.pop((namespace, name), None)
        self._bump()

    def put_secret(self, stored: StoredSecret) -> None:
        """A tenant (or another writer) creates or replaces a Secret, no version check."""
        ref = SecretRef(stored.namespace, stored.name)
        self.secrets[ref] = replace(stored, resource_version=self._bump())

    def edit_annotations(self, ref: SecretRef, changes: Mapping[str, str | None]) -> None:
        """A tenant edits annotations of its Secret (as `kubectl annotate --overwrite`)."""
        self.set_annotations(ref.namespace, ref.name, dict(changes))

    # -- SourceReader -------------------------------------------------------------------------

    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        found = self.sources(namespaces)
        return SourceSnapshot(ingresses=tuple(o for o in found if not _is_istio(o)),
                              istio_gateways=tuple(o for o in found if _is_istio(o)))

    def sources(self, namespaces: Sequence[str] = ()) -> list[dict[str, Any]]:
        return [obj for (ns, _), obj in self.ingresses.items()
                if not namespaces or ns in namespaces]

    # -- SecretStore --------------------------------------------------------------------------

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        ref = SecretRef(namespace, name)
        if ref in self.broken_reads:
            raise self.broken_reads[ref]
        return self.secrets.get(ref)

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        ref = SecretRef(namespace, name)
        if self.before_write is not None:
            self.before_write(ref)
        old = self.secrets.get(ref)
        if (old is None) != (resource_version is None) or (
                old is not None and old.resource_version != resource_version):
            self.conflicts += 1
            raise KubeConflict(f"Secret {ref}: the object has been modified")
        version = self._bump()
        # What others put there besides certbotk8s's part stays (as the adapter's update).
        self.secrets[ref] = StoredSecret(
            namespace, name, version, TLS_TYPE,
            labels={**(old.labels if old else {}), **labels},
            annotations={**(old.annotations if old else {}), **annotations},
            data={**(old.data if old else {}), TLS_CERT: fullchain_pem, TLS_KEY: key_pem})
        self.writes.append(ref)
        return version

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        ref = SecretRef(namespace, name)
        old = self.secrets.get(ref)
        if old is None:
            return
        merged = {**old.annotations, **annotations}
        self.secrets[ref] = replace(old, resource_version=self._bump(), annotations={
            k: v for k, v in merged.items() if v is not None})

    # -- reading back -------------------------------------------------------------------------

    def serial(self, ref: SecretRef) -> str | None:
        """The serial of the certificate the Secret holds (None: no Secret or none)."""
        stored = self.secrets.get(ref)
        crt = stored.data.get(TLS_CERT) if stored is not None else None
        return certs.certificate_info(crt).serial if crt else None


def _is_istio(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith("networking.istio.io/")


def _labelled_tls(stored: StoredSecret, adopt: bool = False) -> bool:
    return stored.type == TLS_TYPE and (secret_meta.is_managed(stored.labels) or (
        adopt and is_cert_manager_secret(stored.labels)))


class _Cache:
    def __init__(self, cache: dict[tuple[str, str], ObservedSecret]) -> None:
        self.cache = cache


class ClusterWatch:
    """app.controller.watch.Watch over a FakeCluster, always in sync (no informer lag): the
    sources, the labelled TLS Secrets observed with the controller's records joined in, and
    `wake`, set by every change in the cluster. Claims are judged at the fake clock's time."""

    def __init__(self, cluster: FakeCluster, records: Records, clock: FakeClock,
                 namespaces: Sequence[str] = (), adopt_cert_manager: bool = False) -> None:
        self.cluster, self.records, self.clock = cluster, records, clock
        self.wake = cluster.wake
        self.namespaces = tuple(namespaces)
        self.adopt = adopt_cert_manager  # also watch cert-manager's Secrets (config migration)

    @property
    def secrets(self) -> _Cache:
        return _Cache({(ref.namespace, ref.name): observe(s, self.adopt)
                       for ref, s in self.cluster.secrets.items()
                       if _labelled_tls(s, self.adopt)})

    def discovery(self, config: Config) -> Discovery:
        kept = self.records.snapshot()
        held = holdings(kept, self.clock(), config.tenants.claim_grace)
        sources = [trim_source(obj) for obj in self.cluster.sources(self.namespaces)]
        return discover_owned([o for o in sources if not _is_istio(o)],
                              [o for o in sources if _is_istio(o)], [], [], config, held,
                              failing_claims(kept))

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        stored = self.cluster.secrets.get(ref)
        seen = (observe(stored, self.adopt)
                if stored is not None and _labelled_tls(stored, self.adopt) else None)
        return with_record(seen, self.records.get(ref))

    def managed(self) -> list[tuple[tuple[str, str], ObservedSecret]]:
        return [(key, joined) for key, seen in self.secrets.cache.items()
                if (joined := with_record(seen, self.records.get(SecretRef(*key)))) is not None]


# -- the CA -----------------------------------------------------------------------------------


@functools.cache
def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certbotk8s fake CA")])
    start = datetime(2000, 1, 1, tzinfo=UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(start).not_valid_after(start + timedelta(days=365 * 100))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


class FakeAcme:
    """adapters.acme.engine.AcmeEngine of a local CA: each order is issued at once, a real
    certificate (leaf + CA, a fresh key of the requested type, valid from the clock's now for
    90 days).

    `fail(host, error)`: every order naming `host` raises `error` (after the order was created)
    until `heal()`; `down`: every order raises AcmeCaUnavailable before one is created;
    `during_order` runs inside each order (e.g. to lose the lead); an order whose `keep_going`
    says no raises OrderAbandoned. `resume` finishes the order it is given the same way.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.orders: list[tuple[str, ...]] = []  # hosts of every order created
        self.requests: list[OrderRequest] = []  # every order's request, deadline included
        self.resumed: list[str] = []
        self.down = False
        self.during_order: Callable[[], None] | None = None
        self.before_order: Callable[[], None] | None = None  # before the order is created
        self._failing: dict[str, Exception] = {}
        self._serials = itertools.count(0x1000)
        self.issued: dict[str, CertificateInfo] = {}  # ARI CertID -> what this CA issued
        self.replaces: list[str | None] = []  # `replaces` of every order created

    def ari_reading(self, cert_id: str) -> AriReading:
        """ARI as Let's Encrypt answers it: a two-day window around 2/3 of the lifetime for a
        certificate of this CA, 404 (AriUnknownCertificate) for any other."""
        info = self.issued.get(cert_id)
        if info is None:
            raise AriUnknownCertificate(f"the CA does not know certificate {cert_id}")
        ideal = info.not_after - info.lifetime / 3
        return AriReading(RenewalWindow(ideal - timedelta(days=1), ideal + timedelta(days=1),
                                        cert_id))

    def fail(self, host: str, error: Exception) -> None:
        self._failing[host] = error

    def heal(self) -> None:
        self._failing.clear()

    def issue(self, request: OrderRequest, solvers: object,
              on_order: Callable[[str], None] | None = None,
              keep_going: Callable[[], bool] | None = None) -> IssuedCertificate:
        if self.down:
            raise AcmeCaUnavailable("the CA does not answer (fake: down)")
        if self.before_order is not None:
            self.before_order()
        self.orders.append(request.hosts)
        self.replaces.append(request.replaces)
        self.requests.append(request)
        url = f"https://ca.test/order/{len(self.orders)}"
        if on_order is not None:
            on_order(url)
        return self._finish(url, request, keep_going)

    def resume(self, order_url: str, request: OrderRequest, solvers: object,
               keep_going: Callable[[], bool] | None = None) -> IssuedCertificate:
        if self.down:
            raise AcmeCaUnavailable("the CA does not answer (fake: down)")
        self.resumed.append(order_url)
        return self._finish(order_url, request, keep_going)

    def _finish(self, url: str, request: OrderRequest,
                keep_going: Callable[[], bool] | None) -> IssuedCertificate:
        for host in request.hosts:
            if host in self._failing:
                raise self._failing[host]
        if self.during_order is not None:
            self.during_order()
        if keep_going is not None and not keep_going():
            raise OrderAbandoned("no longer the leader")
        return self.certificate(request.hosts, request, url)

    def certificate(self, hosts: Sequence[str], request: OrderRequest | None = None,
                    url: str = "https://ca.test/order/0") -> IssuedCertificate:
        """A certificate for `hosts` from this CA, valid from now (also for other writers)."""
        ca_key, ca_cert = _ca()
        key = keys.generate_key(request.key_type if request else KeyType.ECDSA_P256)
        now = self.clock()
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(next(self._serials))
                .not_valid_before(now).not_valid_after(now + LIFETIME)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca_cert))
        info = certs.certificate_info(chain)
        self.issued[info.ari_cert_id] = info
        return IssuedCertificate(keys.key_to_pem(key), chain, info, url,
                                 replaced=request.replaces if request else None)


class FakeIssuers:
    """app.issuers.IssuerRegistry over one FakeAcme: `issuer` is the config's (an unknown name
    raises AcmeError), `engine` is the fake CA for every issuer."""

    def __init__(self, config: Config, acme: FakeAcme) -> None:
        self.config, self.acme = config, acme

    def issuer(self, name: str) -> IssuerConfig:
        try:
            return self.config.issuers[name]
        except KeyError as e:
            raise AcmeError(f"issuer {name!r} is not configured") from e

    def engine(self, name: str) -> FakeAcme:
        self.issuer(name)
        return self.acme


# -- the controller over the fakes ----------------------------------------------------------


class World:
    """What outlives a controller process: the cluster, its records and ledger, the CA, the
    clock, the Lease (`leader`), and the Events posted so far."""

    def __init__(self, config: Config, start: datetime) -> None:
        self.config = config
        self.clock = FakeClock(start)
        self.cluster = FakeCluster()
        self.acme = FakeAcme(self.clock)
        self.store = FakeRecordStore()
        self.ledger = FakeLedger()
        self.leader = FakeLeader()
        self.events = Events()


class FakeController:
    """The real Reconciler (pass and per-key work), KeyedWorkQueue, OrderRunner, RenewalBook and
    Records over a World, wired as app.controller.controller.Controller wires them. `reconcile`
    runs a pass and then the queued keys on this thread (one worker); tests that need several
    workers call `work_one` from their own threads. The queue's timer fires on the fake clock
    (`timer.fire_due`, at each pass). `restart()` is a new process."""

    def __init__(self, world: World,
                 on_shared: Callable[[SecretRef], None] = lambda ref: None) -> None:
        self.world = world
        self.records = Records(world.store, save_every=0.0)
        ports: Any = (FakeIssuers(world.config, world.acme), Solvers())
        self.deps = PassDeps(world.config, world.cluster, world.cluster, world.events, ports[0],
                             ports[1], clock=world.clock, ledger=world.ledger,
                             records=self.records)
        self.metrics = Metrics(process=False)
        self.watch = ClusterWatch(world.cluster, self.records, world.clock,
                                  adopt_cert_manager=world.config.migration.from_cert_manager)
        self.states = StateTable()
        self.timer = FakeTimer(world.clock)
        self.queue: KeyedWorkQueue[SecretRef] = KeyedWorkQueue(self.timer, clock=world.clock)
        self.book = RenewalBook(world.config, self.records, world.ledger, jitter=lambda: 1.0)
        stopping = threading.Event()
        loose: Any = (self.watch, RecordedInflight(self.records))
        self.runner = OrderRunner(self.deps, loose[0], self.states, self.queue, world.leader,
                                  self.metrics, loose[1], self.book, stopping,
                                  foreign_pause=timedelta(minutes=5), gates=(),
                                  on_shared=on_shared)
        self.reconciler = Reconciler(self.deps, loose[0], self.states, self.queue, self.runner,
                                     self.book, world.leader, self.metrics, stopping)
        self.ari = AriRefresher(self.deps, loose[0], self.states, stopping)
        self.book.load()
        self.records.load()

    def scheduled(self) -> dict[SecretRef, datetime]:
        """When each Secret's key comes back (its renewal or retry moment)."""
        return self.queue.scheduled()

    def pass_only(self) -> None:
        """One pass at the clock's time (due timers first), queueing keys; no key worked on."""
        self.world.cluster.wake.clear()
        self.timer.fire_due()
        self.reconciler.reconcile(self.world.clock())

    def work_one(self, timeout: float | None = 0) -> SecretRef | None:
        """One key from the queue, worked on as a worker thread does (None: none waits)."""
        ref = self.queue.get(timeout)
        if ref is not None:
            try:
                self.reconciler.process(ref)
            finally:
                self.queue.done(ref)
        return ref

    def reconcile(self) -> None:
        """One pass at the clock's time, then every queued key, as the loop and a worker run
        them after a wake."""
        self.pass_only()
        while self.work_one() is not None:
            pass

    def settle(self, passes: int = 5) -> None:
        """Passes until nothing wakes the loop any more (at most `passes`)."""
        self.reconcile()
        for _ in range(passes - 1):
            if not self.world.cluster.wake.is_set():
                return
            self.reconcile()
        assert not self.world.cluster.wake.is_set(), "the loop never went quiet"

    def stop(self) -> None:
        """What a graceful stop saves (Controller.stop): the ledger and the records."""
        self.book.flush(force=True)
        self.records.flush(force=True)

    def restart(self) -> FakeController:
        self.stop()
        return FakeController(self.world)
