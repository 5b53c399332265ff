"""Whether this replica reaches the API server, from its informers' contacts (ApiContact).

The API server is "unreachable" from the first failed watch or list until every informer that
failed has reached it again. While it lasts: `certbotk8s_kube_api_reachable` 0, the seconds so
far in `certbotk8s_kube_api_unreachable_seconds`, the cause on `/readyz` and in the log (Events
cannot be stored while the API server is away). When it ends, `on_back` gets the outage (once)
so the controller can record it as an Event.

A failure the API server answered late or with a 5xx (not a refused connection) is often not
the API server's own: with etcd away it still serves watches from its cache while every read
and write of the Lease times out. Then `diagnose` (the server's `/readyz?verbose`) is asked, off
the failing thread and at most every DIAGNOSE_EVERY seconds, and what it names ("cannot reach its
storage (readyz: etcd failed)") becomes the cause shown.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

DIAGNOSE_EVERY = 15.0  # seconds between two /readyz questions during one outage

# Causes where the server was reached but did not answer in time, or answered 5xx.
_SERVER_SIDE = re.compile(r"timed out|HTTP 5\d\d")


@dataclass(frozen=True)
class ApiOutage:
    """One stretch of time the API server could not be reached (or refused every watch)."""

    started: datetime
    seconds: float
    cause: str  # the last cause seen, in plain words

    @property
    def ended(self) -> datetime:
        return self.started + timedelta(seconds=self.seconds)


def _on_own_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="api-readyz", daemon=True).start()


class ApiHealth:
    def __init__(self, on_back: Callable[[ApiOutage], None] = lambda outage: None,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] = lambda reachable: None,
                 on_expired: Callable[[str], None] = lambda resource: None,
                 diagnose: Callable[[], str | None] | None = None,
                 background: Callable[[Callable[[], None]], None] = _on_own_thread) -> None:
        self._on_back = on_back
        self._on_expired = on_expired
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # resource -> cause
        self._since: float | None = None  # clock() at the first failure of this outage
        self._started: datetime | None = None
        self._cause = ""
        self._diagnose = diagnose
        self._background = background
        self._diagnosis = ""  # what the API server says is wrong, during this outage
        self._diagnosing = False
        self._diagnosed_at: float | None = None

    # -- ApiContact ------------------------------------------------------------------------------

    def failed(self, resource: str, cause: str) -> None:
        with self._lock:
            began = not self._failing
            self._failing[resource] = cause
            self._cause = cause
            if began:
                self._since, self._started = self._clock(), datetime.now(UTC)
        if began:
            log.warning("API server unreachable from this replica: %s (%s)", cause, resource)
            self._on_change(False)
        if _SERVER_SIDE.search(cause):
            self._ask_server()

    def reached(self, resource: str) -> None:
        with self._lock:
            if resource not in self._failing:
                return
            del self._failing[resource]
            if self._failing or self._since is None or self._started is None:
                return
            outage = ApiOutage(self._started, self._clock() - self._since, self._shown_cause())
            self._since = self._started = self._diagnosed_at = None
            self._diagnosis = ""
        log.info("API server reachable again after %.1fs (%s)", outage.seconds, outage.cause)
        self._on_change(True)
        self._on_back(outage)

    def expired(self, resource: str) -> None:
        self._on_expired(resource.split("@", 1)[0])  # one series per resource, not namespace

    # -- reading --------------------------------------------------------------------------------

    def reachable(self) -> bool:
        with self._lock:
            return not self._failing

    def unreachable_seconds(self) -> float:
        with self._lock:
            return 0.0 if self._since is None else max(0.0, self._clock() - self._since)

    def describe(self) -> str:
        """One line for `/readyz` and logs: `ok`, or what is failing and for how long."""
        with self._lock:
            if not self._failing or self._since is None:
                return "API server: reachable"
            seconds = self._clock() - self._since
            failing = sorted(self._failing)
            named = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more"
                                               if len(failing) > 3 else "")
            return (f"API server: unreachable for {seconds:.0f}s: {self._shown_cause()} "
                    f"(failing: {named})")

    def cause(self) -> str:
        """The cause of the current outage in plain words ("" when reachable)."""
        with self._lock:
            return self._shown_cause() if self._failing else ""

    def _shown_cause(self) -> str:  # under _lock
        return f"{self._diagnosis} ({self._cause})" if self._diagnosis else self._cause

    # -- asking the API server what is wrong ---------------------------------------------------

    def _ask_server(self) -> None:
        with self._lock:
            now = self._clock()
            if (self._diagnose is None or self._diagnosing or (
                    self._diagnosed_at is not None and now - self._diagnosed_at < DIAGNOSE_EVERY)):
                return
            self._diagnosing, self._diagnosed_at = True, now
        diagnose = self._diagnose
        self._background(lambda: self._diagnose_now(diagnose))

    def _diagnose_now(self, diagnose: Callable[[], str | None]) -> None:
        found: str | None = None
        try:
            found = diagnose()
        except Exception:  # a diagnosis must never take the health tracking down
            log.exception("asking the API server for its readiness failed")
        with self._lock:
            self._diagnosing = False
            if not found or not self._failing:
                return
            fresh = found != self._diagnosis
            self._diagnosis = found
        if fresh:
            log.warning("API server unreachable from this replica: %s", found)
