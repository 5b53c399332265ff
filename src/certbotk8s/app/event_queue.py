"""Events off the order path: a bounded queue drained by its own thread, with budgets.

`QueuedEventRecorder` is an EventRecorder whose `record` only queues (microseconds, never
blocks on the API server); one thread posts through the real recorder. So a flood of hostile
objects (thousands of problem Events) cannot delay a victim's order behind the posts.

Budgets per fixed window (`EventBudget.window` seconds): at most `per_source` Events per involved
object and `per_namespace` per namespace are queued, and at most `capacity` wait at once. What a
budget drops is counted per namespace; when the window ends, one summary Warning Event
(`EventsDropped`) on the first object that lost one says how many, and `on_drop(reason)` counts
each drop (`source`, `namespace`, `queue`) for the metrics. Summaries skip the budgets (at most
one per namespace per window).

Memory: at most `capacity` queued Events; the per-window counters hold one entry per object and
namespace that posted in the window (each at most `per_source`, `per_namespace` Events).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from certbotk8s.core.model import ObjectRef
from certbotk8s.core.ports import EventRecorder

log = logging.getLogger(__name__)

DROPPED_REASON = "EventsDropped"


@dataclass(frozen=True)
class EventBudget:
    window: float = 60.0
    per_namespace: int = 60
    per_source: int = 25  # the problems of one source and pass (10 and a summary) fit twice
    capacity: int = 1000


@dataclass(frozen=True)
class _Event:
    obj: ObjectRef
    type: str
    reason: str
    message: str


@dataclass
class _Dropped:
    first: ObjectRef
    count: int = 0


class QueuedEventRecorder:
    """EventRecorder that queues; `start` its thread, `close` (flushes) when done."""

    def __init__(self, inner: EventRecorder, budget: EventBudget | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_drop: Callable[[str], None] = lambda reason: None) -> None:
        self._inner, self._budget = inner, budget or EventBudget()
        self._clock, self._on_drop = clock, on_drop
        self._queue: deque[_Event] = deque()
        self._summaries: deque[_Event] = deque()
        self._cond = threading.Condition()
        self._window_ends = clock() + self._budget.window
        self._per_source: Counter[ObjectRef] = Counter()
        self._per_namespace: Counter[str] = Counter()
        self._dropped: dict[str, _Dropped] = {}
        self._posting = False
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name="event-queue", daemon=True)

    def start(self) -> QueuedEventRecorder:
        self._thread.start()
        return self

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        with self._cond:
            self._roll(self._clock())
            why = self._over_budget(obj)
            if why is None:
                self._per_source[obj] += 1
                self._per_namespace[obj.namespace] += 1
                self._queue.append(_Event(obj, type, reason, message))
                self._cond.notify()
                return
            self._dropped.setdefault(obj.namespace, _Dropped(obj)).count += 1
            if len(self._dropped) == 1:
                self._cond.notify()  # the drain thread now waits for the window's end
        log.debug("Event %s on %s dropped: over the %s budget", reason, obj, why)
        self._on_drop(why)

    def _over_budget(self, obj: ObjectRef) -> str | None:
        if self._per_source[obj] >= self._budget.per_source:
            return "source"
        if self._per_namespace[obj.namespace] >= self._budget.per_namespace:
            return "namespace"
        if len(self._queue) >= self._budget.capacity:
            return "queue"
        return None

    def _roll(self, now: float) -> None:
        """At the window's end: queue the summaries of what it dropped, start the next one."""
        if now < self._window_ends:
            return
        for namespace, dropped in self._dropped.items():
            self._summaries.append(_Event(
                dropped.first, "Warning", DROPPED_REASON,
                f"{dropped.count} Events about objects in namespace {namespace} were not "
                f"posted in the last {self._budget.window:g} s: over the Event budget "
                f"({self._budget.per_namespace} per namespace, {self._budget.per_source} per "
                f"object per window)"))
        self._dropped.clear()
        self._per_source.clear()
        self._per_namespace.clear()
        self._window_ends = now + self._budget.window
        self._cond.notify_all()

    def _next(self) -> _Event | None:
        """The next Event to post (summaries first), waiting for one; None once closing."""
        with self._cond:
            while True:
                self._roll(self._clock())
                if self._summaries or self._queue:
                    self._posting = True
                    return (self._summaries or self._queue).popleft()
                if self._closing:
                    return None
                # Drops wait for the window's end (a summary to post); else for a record.
                wait = max(0.01, self._window_ends - self._clock()) if self._dropped else None
                self._cond.wait(wait)

    def _drain(self) -> None:
        while (event := self._next()) is not None:
            try:
                self._inner.record(event.obj, event.type, event.reason, event.message)
            except Exception:  # the port never raises; a bug in it must not stop the queue
                log.exception("could not post Event %s on %s", event.reason, event.obj)
            finally:
                with self._cond:
                    self._posting = False
                    self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._summaries) + (1 if self._posting else 0)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued Event is posted (False: `timeout` seconds passed first)."""
        until = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._summaries or self._posting:
                left = until - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Post what is queued (up to `timeout` seconds), then stop the thread."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        if not flushed:
            log.warning("%d Events not posted at shutdown", self.pending)
