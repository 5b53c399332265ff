"""The rate-limit budget and the backoff state, the same for `renew --once` and the controller,
kept on the cluster so a restart or the next CronJob run honours them. Only the controller's
own memory counts (its namespace); nothing a tenant writes adds to or takes from a budget.

- Issuances: each certificate record's `issued-7d` history (app.records, `set_issued`).
- New orders and failed authorizations: the ledger Secret (adapters/kube/ledger.py).
- Failure state per Secret: its certificate record (whether the Secret exists or not).

Checking the budget and spending it are one step across threads (the controller's workers, a
CronJob run's pool): `reserve` checks and, when the order may go, counts it at once as a
`Reservation` (an order, and an issuance for the per-domain and exact-set limits) that every
later check sees. When the CA creates the order the reservation becomes an order in flight
(`placed`), counted until `issued` or `order_ended`. So of N free slots, N orders go,
whatever the number of workers; no lock is held while the order runs.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from certbotk8s.app.records import Records
from certbotk8s.app.throttle import WriteThrottle
from certbotk8s.core.budget import ledger as ledger_codec
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import CertificateSpec, ObservedSecret, RenewalWindow, SecretRef
from certbotk8s.core.renewal.backoff import (
    JITTER,
    FailureState,
    after_failure,
    capped_on_read,
    for_attempt,
    spec_fingerprint,
)
from certbotk8s.core.renewal.interim import interim_renewal
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.sources.claimants import claimant, claimant_namespace
from certbotk8s.core.state import secret_meta

log = logging.getLogger(__name__)


IN_FLIGHT_MAX = timedelta(hours=1)
"""Longer than any order may take (the order and DNS propagation deadlines are minutes)."""


class LedgerStore(Protocol):
    def load(self) -> dict[str, Any]: ...
    def save(self, values: dict[str, Any]) -> None: ...


@dataclass(eq=False)  # each reservation is itself (`in`, `remove` by identity)
class Reservation:
    """One order's claim on the budget, from `reserve` until the CA created the order
    (`placed`: from then on it is an order in flight of the book) or it was not placed
    (`end`, or leaving the `with` block: the claim is freed)."""

    book: RenewalBook
    issuance: ratelimit.IssuanceRecord
    order: ratelimit.OrderRecord
    open: bool = True

    def placed(self, at: datetime, exempt: bool) -> None:
        self.book.placed(self, at, exempt)

    def end(self) -> None:
        self.book.unreserve(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


class RenewalBook:
    """Thread-safe; `flush` writes the ledger (throttled unless forced). `write_behind`: only
    the owner's `flush` calls write it (the controller's 5 s flush, never an order's thread);
    otherwise each change flushes when the throttle allows (a CronJob run)."""

    def __init__(self, config: Config, records: Records, ledger: LedgerStore | None, *,
                 save_every: float = 1.0,
                 jitter: Callable[[], float] = lambda: random.uniform(*JITTER),
                 write_behind: bool = False) -> None:
        self._write_behind = write_behind
        self._config = config
        self._records = records
        self._store = ledger
        self._throttle = WriteThrottle(save_every)
        self._jitter = jitter
        self._lock = threading.RLock()
        self._ledger = ledger_codec.Ledger()
        self._issued: list[ratelimit.IssuanceRecord] = []
        # Counted orders placed here that have not ended: they spend the per-domain and
        # exact-set budgets from the moment they are placed. Otherwise the Secrets waiting for
        # one freed slot (or the first workers of a CronJob run) all order into it, and the CA
        # refuses all but one when it finalizes them.
        self._in_flight: list[ratelimit.IssuanceRecord] = []
        self._reserved: list[Reservation] = []  # checked and claimed, not yet placed
        self._version = 0  # changes of what a check counts (`reserve` checks again on one)
        self._dirty = False

    # -- loading --------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the ledger (at start and when becoming leader); a failure keeps what we have."""
        if self._store is None:
            return
        try:
            loaded = ledger_codec.from_json(self._store.load())
        except CertbotK8sError as e:
            log.warning("cannot read the renewal ledger: %s", e)
            return
        with self._lock:
            known = {(o.at, o.namespace) for o in self._ledger.orders}
            self._ledger.orders += [o for o in loaded.orders if (o.at, o.namespace) not in known]
            seen = {(f.at, f.identifier) for f in self._ledger.failed_authz}
            self._ledger.failed_authz += [f for f in loaded.failed_authz
                                          if (f.at, f.identifier) not in seen]
            self._version += 1

    def set_issued(self, records: Mapping[SecretRef, Mapping[str, str]], now: datetime) -> None:
        """What this installation issued in the last 7 days, from the certificate records
        (by Secret: each issuance counts towards its claimant's share of a domain, the
        namespace of the source it was written for: an Istio Gateway's, not istio-system's)."""
        issued = [replace(r, namespace=claimant_namespace(ref, record.get(secret_meta.SOURCE, "")))
                  for ref, record in records.items()
                  for r in secret_meta.issuance_records(record, now)]
        with self._lock:
            self._issued = issued
            # an order whose end was never reported (an unexpected error) stops holding its slot
            self._in_flight = [o for o in self._in_flight if now - o.at < IN_FLIGHT_MAX]
            self._version += 1

    # -- the budget -----------------------------------------------------------------------------

    @staticmethod
    def sends_replaces(action: Action, observed: ObservedSecret | None) -> bool:
        """Whether the order for `action` will name the current certificate in `replaces`
        (the one rule of core.renewal.replaces, which the order itself follows)."""
        return replaced_cert_id(action.kind is ActionKind.RENEW, action.desired,
                                observed) is not None

    def check(self, action: Action, observed: ObservedSecret | None,
              now: datetime) -> ratelimit.Hold | None:
        """The budget's answer for an order of `action` now, orders in flight and reservations
        counted; spends nothing (`reserve` does)."""
        return self._check(action, observed, now)[0]

    def _check(self, action: Action, observed: ObservedSecret | None,
               now: datetime) -> tuple[ratelimit.Hold | None, int]:
        """The answer, and the version of the book it was computed on (computed outside the
        lock: the workers' checks do not queue behind one another)."""
        limits = self._config.issuers[action.desired.spec.issuer].rate_limits
        with self._lock:
            self._ledger.prune(now, limits)  # (only what no window counts any more)
            version = self._version
            issued = [*self._issued, *self._in_flight, *(r.issuance for r in self._reserved)]
            orders = [*self._ledger.orders, *(r.order for r in self._reserved)]
            failures = list(self._ledger.failed_authz)
        return ratelimit.check_budget(
            action.desired.spec.hosts, now, issued, orders, failures,
            ari_renewal=self.sends_replaces(action, observed), limits=limits,
            namespace=claimant(action.desired)), version

    def reserve(self, action: Action, observed: ObservedSecret | None,
                now: datetime) -> Reservation | ratelimit.Hold:
        """Check the budget and, when the order may go, spend it in the same step: a
        `Reservation` every later check counts. Else the Hold (nothing spent). The answer
        counts only if nothing was spent or freed while it was computed (else it is computed
        again)."""
        exempt = self.sends_replaces(action, observed)
        namespace = claimant(action.desired)  # whose share it spends (as `check`)
        while True:
            hold, version = self._check(action, observed, now)
            with self._lock:
                if version != self._version:
                    continue  # another worker spent or freed some budget meanwhile
                if hold is not None:
                    return hold
                reservation = Reservation(
                    self, ratelimit.IssuanceRecord(tuple(action.desired.spec.hosts), now,
                                                   exempt, namespace),
                    ratelimit.OrderRecord(now, namespace, exempt))
                self._reserved.append(reservation)
                self._version += 1
                return reservation

    def placed(self, reservation: Reservation, at: datetime, exempt: bool) -> None:
        """The CA created the reserved order: from now on it is an order in flight (as
        `order_placed`), in the same step (never counted twice, nor not at all)."""
        with self._lock:
            if reservation.open:
                reservation.open = False
                self._reserved.remove(reservation)
            self.order_placed(reservation.issuance.namespace, at, exempt,
                              reservation.issuance.hosts)

    def unreserve(self, reservation: Reservation) -> None:
        """No order was placed on `reservation` (or it was, and is an order in flight now):
        it claims nothing more."""
        with self._lock:
            if reservation.open:
                reservation.open = False
                self._reserved.remove(reservation)
                self._version += 1

    def admit(self, action: Action, observed: ObservedSecret | None, now: datetime,
              ari: RenewalWindow | None = None, requested: datetime | None = None,
              ) -> tuple[Action, ratelimit.Hold | None]:
        """The order to place for the due `action` and the budget's hold on it (None: it may
        go). A host change that the budget holds or that failed before (a new name whose
        challenge fails, an order the CA refused) renews the certificate the Secret holds, for
        its own names and with `replaces`, once that one is due (core.renewal.interim); until
        then a hold ends no later than that moment, so the caller looks again in time (a
        backoff is capped by the certificate's life: core.renewal.backoff). `ari`: the CA's
        window for the certificate `observed` holds; `requested`: as for `failure_state`."""
        ref = action.desired.secret
        hold = self.check(action, observed, now)
        held = hold is not None and hold.until > now
        if not held and self.failure_state(ref, observed, now, spec=action.desired.spec,
                                           requested=requested).failures == 0:
            return action, hold
        interim = interim_renewal(action, observed, now, ari)
        if interim is None:
            return action, hold
        if interim.kind is ActionKind.RENEW:
            free = self.check(interim, observed, now) is None and not self.failure_state(
                ref, observed, now, spec=interim.desired.spec,
                requested=requested).waiting(now)
            return (interim, None) if free else (action, hold)
        assert interim.next_renewal is not None
        if hold is not None and held and interim.next_renewal < hold.until:
            hold = replace(hold, until=interim.next_renewal, message=(
                f"{hold.message}; the certificate it holds renews for its own names "
                f"meanwhile, at {secret_meta.format_time(interim.next_renewal)}"))
        return action, hold

    def order_placed(self, namespace: str, at: datetime, exempt: bool,
                     hosts: Sequence[str] = ()) -> None:
        """A new order for `hosts` was created at `at`; a counted one (not `exempt`) spends a
        certificate of the per-domain and exact-set budgets until it ends (`issued` or
        `order_ended`)."""
        with self._lock:
            self._ledger.orders.append(ratelimit.OrderRecord(at, namespace, exempt))
            if hosts and not exempt:
                self._in_flight.append(ratelimit.IssuanceRecord(tuple(hosts), at,
                                                                namespace=namespace))
            self._dirty = True
            self._version += 1
        if not self._write_behind:
            self.flush()

    def issued(self, namespace: str, hosts: Sequence[str], at: datetime, exempt: bool) -> None:
        """A certificate for `hosts` was issued into a Secret in `namespace` at `at`: counted
        from now on, not only once `set_issued` reads it from the records again (a CronJob run
        reads them once: without this its own issuances would spend no budget in the run)."""
        with self._lock:  # one step: the slot moves from in flight to issued
            self.order_ended(namespace, hosts)
            self._issued.append(ratelimit.IssuanceRecord(tuple(hosts), at, exempt, namespace))
            self._version += 1

    def order_ended(self, namespace: str, hosts: Sequence[str]) -> None:
        """The order for `hosts` of a Secret in `namespace` ended: it spends nothing more
        (what it issued is counted by `issued`)."""
        wanted = (namespace, ratelimit.identifier_set(hosts))
        with self._lock:
            for index in range(len(self._in_flight) - 1, -1, -1):
                o = self._in_flight[index]
                if (o.namespace, ratelimit.identifier_set(o.hosts)) == wanted:
                    del self._in_flight[index]
                    self._version += 1
                    return

    def authz_failed(self, identifiers: Iterable[str], at: datetime) -> None:
        with self._lock:
            self._ledger.failed_authz += [ratelimit.FailedAuthz(i, at) for i in identifiers]
            self._dirty = True
            self._version += 1
        if not self._write_behind:
            self.flush()

    # -- failure state --------------------------------------------------------------------------

    def failure_state(self, ref: SecretRef, observed: ObservedSecret | None = None,
                      now: datetime | None = None, *, spec: CertificateSpec | None,
                      requested: datetime | None = None) -> FailureState:
        """`ref`'s failure state from its record, the next attempt capped by the life left
        to the certificate `observed` holds at `now` (default: this clock), core.renewal.backoff.

        With `spec` (the certificate about to be attempted): the state that holds that attempt
        (`for_attempt`: none after a change of the spec, no wait after a renewal request, from
        the Secret's request annotation or `requested`, the command's own request). Without:
        the state as recorded (for counting)."""
        record = self._records.get(ref)
        info = observed.certificate if observed is not None else None
        at = now or datetime.now(UTC)
        state = capped_on_read(secret_meta.parse_failures(record), at,
                               info.not_after if info is not None else None,
                               secret_meta.parse_time(record.get(secret_meta.LAST_ERROR_AT, "")))
        if spec is None:
            return state
        asked = [t for t in (requested, _requested(observed)) if t is not None and t <= at]
        return for_attempt(state, spec_fingerprint(spec), max(asked, default=None))

    def failed(self, ref: SecretRef, observed: ObservedSecret | None, now: datetime,
               message: str, spec: CertificateSpec) -> FailureState:
        """Record one more failure of `ref`'s attempt at `spec`; returns the new state (next
        attempt included). The backoff never outlasts the certificate `observed` holds
        (core.renewal.backoff)."""
        previous = self.failure_state(ref, spec=None)
        info = observed.certificate if observed is not None else None
        state = after_failure(previous, now, message, self._jitter(),
                              info.not_after if info is not None else None,
                              spec_fingerprint(spec))
        self._records.update(ref, secret_meta.failure_annotations(state, now))
        return state

    def succeeded(self, ref: SecretRef) -> None:
        """The Secret now holds a new certificate: no failure state any more."""
        self._records.update(ref, dict.fromkeys(secret_meta.FAILURE_KEYS))

    # -- persistence ----------------------------------------------------------------------------

    def flush(self, force: bool = False) -> None:
        """Write the ledger when something changed, at most every `save_every` s unless forced
        (an order costs no extra API write in a burst; a kill loses at most that much)."""
        if self._store is None:
            return
        with self._lock:
            if not self._dirty or not self._throttle.allows(force):
                return
            values = ledger_codec.to_json(self._ledger)
            self._dirty = False
        try:
            self._store.save(values)
        except CertbotK8sError as e:
            log.warning("cannot write the renewal ledger: %s", e)
            with self._lock:
                self._dirty = True


def _requested(observed: ObservedSecret | None) -> datetime | None:
    """The renewal request on the Secret (`certbotk8s renew NAMESPACE/SECRET`), if any."""
    return secret_meta.parse_time(observed.renew_requested) if observed is not None else None
