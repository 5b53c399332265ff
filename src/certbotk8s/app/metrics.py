"""Prometheus metrics of the controller, in a registry of its own (no process-global state).

Label values are bounded: ACME URLs map to a fixed endpoint vocabulary, HTTP methods to a
known set, certificate series are removed with their certificate. Process metrics
(`process_*`: CPU, memory, open files, start time) come from prometheus_client's collector.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.renewal import readiness
from certbotk8s.core.renewal.readiness import CertificateRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Labels of the certbotk8s_certificate_* series, named as cert-manager names its
# certmanager_certificate_* ones. certbotk8s's issuers are entries of its config that serve the
# whole cluster, like an external issuer's ClusterIssuer: kind and group say so.
CERT_LABELS = ("name", "namespace", "issuer_name", "issuer_kind", "issuer_group")
ISSUER_KIND = "ClusterIssuer"
ISSUER_GROUP = "certbotk8s.io"

ENDPOINTS = ("directory", "newNonce", "newAccount", "newOrder", "order", "authz", "challenge",
             "finalize", "certificate", "renewalInfo", "other")

# Path segments (lower-cased) of Pebble and Boulder / Let's Encrypt → endpoint. The first
# segment of a path found here decides, so `/finalize-order/<id>` is finalize, not order.
_SEGMENTS: dict[str, str] = {
    "dir": "directory", "directory": "directory",
    "nonce-plz": "newNonce", "new-nonce": "newNonce",
    "sign-me-up": "newAccount", "new-acct": "newAccount", "new-account": "newAccount",
    "order-plz": "newOrder", "new-order": "newOrder",
    "my-order": "order", "order": "order",
    "authz": "authz", "authz-v3": "authz",
    "chalz": "challenge", "chall": "challenge", "chall-v3": "challenge",
    "finalize-order": "finalize", "finalize": "finalize",
    "certz": "certificate", "cert": "certificate",
    "renewalinfo": "renewalInfo", "renewal-info": "renewalInfo",
}
_METHODS = frozenset({"GET", "HEAD", "POST"})

_ACME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def acme_endpoint(url: str) -> str:
    """The endpoint name of an ACME URL (one of `ENDPOINTS`)."""
    segments = [s.lower() for s in urlsplit(url).path.split("/") if s]
    for segment in segments:
        endpoint = _SEGMENTS.get(segment)
        if endpoint is not None:
            return endpoint
    return "other"


class _Unchecked:
    """Exposes a collector without letting the registry check its names.

    `certbotk8s_rate_limit_holds` (gauge) and `certbotk8s_rate_limit_holds_total` (counter)
    are distinct names in the text format served here, but prometheus_client's registry counts
    a counter's base name as taken too (OpenMetrics would name that family
    `certbotk8s_rate_limit_holds`), so the counter is registered through this wrapper.
    """

    def __init__(self, inner: Counter) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        return self._inner.collect()


class Metrics:
    """Every metric certbotk8s exports; `render()` gives the text exposition format."""

    def __init__(self, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        # Shaped like cert-manager's certmanager_certificate_* series, label names included
        # (CERT_LABELS): a rename of the metric ports dashboards and alerts.
        cert = list(CERT_LABELS)
        self.ready_status = Gauge(
            "certbotk8s_certificate_ready_status",
            "1 for the certificate's current Ready condition (True, False, Unknown), else 0; "
            "every desired certificate and refused source has a series",
            [*cert, "condition"], registry=r)
        self.expiration = Gauge(
            "certbotk8s_certificate_expiration_timestamp_seconds",
            "notAfter of the certificate in the Secret (Unix time)", cert, registry=r)
        self.not_before = Gauge(
            "certbotk8s_certificate_not_before_timestamp_seconds",
            "notBefore of the certificate in the Secret (Unix time); with the expiration, its "
            "lifetime", cert, registry=r)
        self.renewal = Gauge(
            "certbotk8s_certificate_renewal_timestamp_seconds",
            "When the certificate is renewed or its issuance tried again (Unix time)", cert,
            registry=r)
        self.failed_attempts = Gauge(
            "certbotk8s_certificate_failed_attempts",
            "Failed issuance or renewal attempts in a row (0 after a success)", cert,
            registry=r)
        self._rows: dict[tuple[str, str, str], CertificateRow] = {}
        self._rows_lock = threading.Lock()
        self.acme_requests = Counter(
            "certbotk8s_acme_requests_total", "HTTP requests to the ACME CA of an issuer",
            ["issuer", "endpoint", "method", "status"], registry=r)
        self.acme_duration = Histogram(
            "certbotk8s_acme_request_duration_seconds", "Duration of ACME HTTP requests",
            ["issuer", "endpoint"], buckets=_ACME_BUCKETS, registry=r)
        self.challenges = Counter(
            "certbotk8s_challenges_total", "Challenges by type and outcome",
            ["type", "outcome"], registry=r)
        self.orders_in_flight = Gauge(
            "certbotk8s_orders_in_flight", "ACME orders being worked on", registry=r)
        self.rate_limit_holds = Gauge(
            "certbotk8s_rate_limit_holds",
            "Certificates currently held back by a rate limit", ["limit"], registry=r)
        self.rate_limit_holds_total = Counter(
            "certbotk8s_rate_limit_holds_total",
            "Times a certificate was held back by a rate limit", ["limit"], registry=None)
        r.register(_Unchecked(self.rate_limit_holds_total))
        self.leader = Gauge(
            "certbotk8s_leader", "1 while this replica holds the leader Lease", registry=r)
        self.reconcile_duration = Histogram(
            "certbotk8s_reconcile_duration_seconds", "Duration of one reconcile pass",
            buckets=_RECONCILE_BUCKETS, registry=r)
        self.managed_certificates = Gauge(
            "certbotk8s_managed_certificates", "Certificates certbotk8s manages", registry=r)
        self.account_recoveries = Counter(
            "certbotk8s_acme_account_recoveries_total",
            "Times an issuer's ACME account had to be registered again, by outcome",
            ["issuer", "outcome"], registry=r)
        self.account_ready = Gauge(
            "certbotk8s_acme_account_ready",
            "0 after re-registering an issuer's account failed, 1 once it worked",
            ["issuer"], registry=r)
        self.ca_up = Gauge(
            "certbotk8s_acme_ca_up",
            "0 while an issuer's CA is considered down (orders wait for its directory), else 1",
            ["issuer"], registry=r)
        self.ca_waiting = Gauge(
            "certbotk8s_acme_ca_waiting_certificates",
            "Due certificates waiting for their CA to come back", ["issuer"], registry=r)
        self.dns_up = Gauge(
            "certbotk8s_dns_provider_up",
            "0 while a DNS-01 provider's server gives no answer (its orders wait for a probe), "
            "else 1", ["provider"], registry=r)
        self.dns_waiting = Gauge(
            "certbotk8s_dns_waiting_certificates",
            "Due certificates waiting for their DNS-01 provider's server to answer again",
            ["provider"], registry=r)
        self.api_reachable = Gauge(
            "certbotk8s_kube_api_reachable",
            "0 while this replica's watches or Lease renewals get no answer from the API server "
            "(or a 5xx), else 1", registry=r)
        self.api_reachable.set(1)
        self.api_unreachable_seconds = Gauge(
            "certbotk8s_kube_api_unreachable_seconds",
            "Seconds the API server has been unreachable from this replica (0 when reachable)",
            registry=r)
        self.records_unsaved = Gauge(
            "certbotk8s_records_unsaved",
            "Certificate records changed in this replica's memory and not yet written to its "
            "namespace (written behind: every 5 s, or up to 10 s when the next change to the "
            "record is expected)", registry=r)
        self.watch_expired = Counter(
            "certbotk8s_watch_expired_total",
            "Watches the API server answered with 410 Gone (resourceVersion too old); each "
            "was followed by a full list", ["resource"], registry=r)
        self.newer_certificate_kept = Counter(
            "certbotk8s_newer_certificate_kept_total",
            "Certificates ordered but not written: on the 409, the Secret held a newer one "
            "another certbotk8s writer stored meanwhile that needs nothing, and was kept",
            registry=r)
        self.unwritten_certificates = Gauge(
            "certbotk8s_unwritten_certificates",
            "Certificates the CA issued whose Secret write failed (API server unreachable, or "
            "leadership lost before the write), kept in this replica's memory and written "
            "without a new order once it leads and reaches the API server again", registry=r)
        self.leadership_lost = Counter(
            "certbotk8s_leadership_lost_total",
            "Times this replica stopped leading without being asked to (its Lease could not "
            "be renewed in time, or another replica holds it)", registry=r)
        self.certificate_errors = Counter(
            "certbotk8s_certificate_errors_total",
            "Certificates whose handling raised unexpectedly (logged with the traceback, a "
            "Warning Event InternalError on the source); the pass went on with the others",
            registry=r)
        self.ari_errors = Counter(
            "certbotk8s_ari_errors_total",
            "ARI reads that gave no usable window (the renewal fell back)", ["kind"],
            registry=r)
        self.ari_renewals_held = Counter(
            "certbotk8s_ari_renewals_held_total",
            "Times the CA's ARI asked to renew a certificate that the cap on ARI renewals "
            "per Secret or the minimum age held back", registry=r)
        self.events_dropped = Counter(
            "certbotk8s_events_dropped_total",
            "Events not posted: over the per-object (`source`) or per-namespace (`namespace`) "
            "budget, or the Event queue full (`queue`); a summary Event EventsDropped follows",
            ["reason"], registry=r)

    # --- ACME -------------------------------------------------------------------------

    def observe_acme(self, issuer: str, record: RequestRecord) -> None:
        """An IssuerObserver: one request to the CA of a configured issuer."""
        endpoint = acme_endpoint(record.url)
        method = record.method.upper()
        self.acme_requests.labels(
            issuer, endpoint, method if method in _METHODS else "other",
            str(record.status) if 0 <= record.status < 1000 else "0",
        ).inc()
        self.acme_duration.labels(issuer, endpoint).observe(max(record.seconds, 0.0))

    def challenge(self, type: ChallengeType | str, outcome: str) -> None:
        """Count one challenge outcome (callers use a small fixed set, e.g. valid/invalid)."""
        self.challenges.labels(type.value if isinstance(type, ChallengeType) else type,
                               outcome).inc()

    @contextlib.contextmanager
    def order_in_flight(self) -> Iterator[None]:
        """Counts an order in `certbotk8s_orders_in_flight` while the block runs."""
        self.orders_in_flight.inc()
        try:
            yield
        finally:
            self.orders_in_flight.dec()

    def set_rate_limit_holds(self, limit: str, count: int) -> None:
        self.rate_limit_holds.labels(limit).set(count)

    def count_rate_limit_hold(self, limit: str) -> None:
        self.rate_limit_holds_total.labels(limit).inc()

    # --- certificates and the controller ----------------------------------------------

    def publish_certificates(self, rows: Iterable[CertificateRow]) -> None:
        """Replace every per-certificate series with `rows` (one reconcile's view)."""
        fresh = {row.key: row for row in rows}
        with self._rows_lock:
            for key in set(self._rows) - set(fresh):
                self._drop(key)
            for row in fresh.values():
                self._set(row)
            self._rows = fresh

    def mark_failed(self, namespace: str, name: str, failures: int,
                    next_attempt: datetime | None = None) -> None:
        """An attempt for Secret namespace/name just failed: count it, and a certificate that
        never arrived is now Ready False, its next attempt the renewal time (without waiting
        for the next reconcile, which would say the same)."""
        with self._rows_lock:
            for key, row in list(self._rows.items()):
                if (row.namespace, row.name) != (namespace, name) or not row.issuer:
                    continue
                condition = readiness.FALSE if row.condition == readiness.UNKNOWN \
                    else row.condition
                self._rows[key] = replace(row, condition=condition, failures=failures,
                                          renewal=next_attempt or row.renewal)
                self._set(self._rows[key])

    def _set(self, row: CertificateRow) -> None:
        labels = cert_label_values(row.key)  # in the gauges' label order
        for condition in readiness.CONDITIONS:
            self.ready_status.labels(*labels, condition).set(
                1 if condition == row.condition else 0)
        for gauge, when in ((self.expiration, row.not_after), (self.renewal, row.renewal),
                            (self.not_before, row.not_before)):
            if when is None:
                _remove(gauge, *labels)
            else:
                gauge.labels(*labels).set(when.timestamp())
        self.failed_attempts.labels(*labels).set(row.failures)

    def _drop(self, key: tuple[str, str, str]) -> None:
        labels = cert_label_values(key)
        for condition in readiness.CONDITIONS:
            _remove(self.ready_status, *labels, condition)
        for gauge in (self.expiration, self.not_before, self.renewal, self.failed_attempts):
            _remove(gauge, *labels)

    def account_recovery(self, issuer: str, outcome: str) -> None:
        """Count one re-registration (`registered`, `new-key` or `failed`)."""
        self.account_recoveries.labels(issuer, outcome).inc()
        self.account_ready.labels(issuer).set(0 if outcome == "failed" else 1)

    def set_ca_up(self, issuer: str, up: bool, waiting: int) -> None:
        self.ca_up.labels(issuer).set(1 if up else 0)
        self.ca_waiting.labels(issuer).set(waiting)

    def set_dns_up(self, provider: str, up: bool, waiting: int) -> None:
        self.dns_up.labels(provider).set(1 if up else 0)
        self.dns_waiting.labels(provider).set(waiting)

    def set_leader(self, leader: bool) -> None:
        self.leader.set(1 if leader else 0)

    def lost_leadership(self) -> None:
        self.leadership_lost.inc()

    def set_api_reachable(self, reachable: bool) -> None:
        self.api_reachable.set(1 if reachable else 0)

    def track_api_unreachable(self, seconds: Callable[[], float]) -> None:
        """`certbotk8s_kube_api_unreachable_seconds` reads `seconds()` at each scrape."""
        self.api_unreachable_seconds.set_function(seconds)

    def track_records_unsaved(self, count: Callable[[], float]) -> None:
        """`certbotk8s_records_unsaved` reads `count()` at each scrape."""
        self.records_unsaved.set_function(count)

    def count_watch_expired(self, resource: str) -> None:
        self.watch_expired.labels(resource).inc()

    def set_managed_certificates(self, count: int) -> None:
        self.managed_certificates.set(count)

    def count_certificate_error(self, count: int = 1) -> None:
        self.certificate_errors.inc(count)

    def count_ari_error(self, kind: str) -> None:
        """kind: `malformed` (the CA's answer is not a window), `unavailable` (no answer) or
        `rejected` (a window for another certificate or outside its validity)."""
        self.ari_errors.labels(kind).inc()

    def count_ari_renewal_held(self, count: int = 1) -> None:
        self.ari_renewals_held.inc(count)

    def count_event_dropped(self, reason: str) -> None:
        """reason: `source`, `namespace` (an Event budget) or `queue` (the queue is full)."""
        self.events_dropped.labels(reason).inc()

    def observe_reconcile(self, seconds: float) -> None:
        self.reconcile_duration.observe(max(seconds, 0.0))

    def render(self) -> bytes:
        """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


def cert_label_values(key: tuple[str, str, str]) -> tuple[str, str, str, str, str]:
    """A row key (namespace, name, issuer) as the gauges' CERT_LABELS values. A refused source
    has no issuer: then kind and group are empty too."""
    namespace, name, issuer = key
    if not issuer:
        return (name, namespace, "", "", "")
    return (name, namespace, issuer, ISSUER_KIND, ISSUER_GROUP)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
