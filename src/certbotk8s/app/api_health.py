"""Whether this replica reaches the API server, from its informers' contacts (ApiContact).

The API server is "unreachable" from the first failed watch or list until every informer that
failed has reached it again. While it lasts: `certbotk8s_kube_api_reachable` 0, the seconds so
far in `certbotk8s_kube_api_unreachable_seconds`, the cause on `/readyz` and in the log (Events
cannot be stored while the API server is away). When it ends, `on_back` gets the outage (once)
so the controller can record it as an Event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outage:
    """One stretch of time the API server could not be reached (or refused every watch)."""

    started: datetime
    seconds: float
    cause: str  # the last cause seen, in plain words

    @property
    def ended(self) -> datetime:
        return self.started + timedelta(seconds=self.seconds)


class ApiHealth:
    def __init__(self, on_back: Callable[[Outage], None] = lambda outage: None,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] = lambda reachable: None,
                 on_expired: Callable[[str], None] = lambda resource: None) -> None:
        self._on_back = on_back
        self._on_expired = on_expired
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # resource -> cause
        self._since: float | None = None  # clock() at the first failure of this outage
        self._started: datetime | None = None
        self._cause = ""

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

    def reached(self, resource: str) -> None:
        with self._lock:
            if resource not in self._failing:
                return
            del self._failing[resource]
            if self._failing or self._since is None or self._started is None:
                return
            outage = Outage(self._started, self._clock() - self._since, self._cause)
            self._since = self._started = None
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
            return (f"API server: unreachable for {seconds:.0f}s: {self._cause} "
                    f"({len(self._failing)} watches failing)")
