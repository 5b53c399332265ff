"""A keyed work queue in the style of client-go's workqueue: the controller's one way of handing
out work, one key per certificate (its Secret).

- `add(key)`: the key is handed out by `get` once. A key already waiting is not queued twice
  (a burst of events is one piece of work).
- A key handed out is *processing* until its worker calls `done(key)`: no second worker gets
  it meanwhile. An `add` during that time marks it dirty; `done` queues it again, so the
  change is looked at once the running work is over, by one worker.
- `add_at(key, when)` / `add_after(key, delay)`: `add(key)` at that moment, through a `Timer`
  (APScheduler in the controller, a fake in tests). One moment per key: a later call replaces
  it (a certificate has one next renewal or retry), `forget` cancels it.
- `shutdown(grace)`: no more adds, nothing more handed out (`get` returns None), waiting keys
  and timers dropped; waits up to `grace` seconds for the keys being processed to be done.

Keys are handed out in the order they were first added (FIFO). Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class Timer(Protocol):
    """Calls `fire` at `when` (at once if past), once. `at` with a `name` already scheduled
    replaces that job; `cancel` of an unknown name is a no-op. After `stop` nothing fires."""

    def at(self, name: str, when: datetime, fire: Callable[[], None]) -> None: ...
    def cancel(self, name: str) -> None: ...


class KeyedWorkQueue(Generic[K]):
    def __init__(self, timer: Timer,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._timer, self._clock = timer, clock
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be handed out (queued, or re-queued by `done`)
        self._processing: set[K] = set()
        self._when: dict[K, datetime] = {}  # each key's delayed add
        self._shutting_down = False

    # -- adding -----------------------------------------------------------------------------

    def add(self, key: K) -> None:
        with self._cond:
            if self._shutting_down or key in self._dirty:
                return
            self._dirty.add(key)
            if key in self._processing:
                return  # `done` queues it again
            self._queue.append(key)
            self._cond.notify()

    def add_at(self, key: K, when: datetime) -> None:
        """`add(key)` at `when` (replaces the key's earlier moment)."""
        with self._cond:
            if self._shutting_down or self._when.get(key) == when:
                return
            self._when[key] = when
            self._timer.at(_name(key), when, lambda: self._fire(key, when))

    def add_after(self, key: K, delay: timedelta) -> None:
        self.add_at(key, self._clock() + delay)

    def forget(self, key: K) -> None:
        """Cancel the key's delayed add (a key already waiting stays queued)."""
        with self._cond:
            if self._when.pop(key, None) is not None:
                self._timer.cancel(_name(key))

    def _fire(self, key: K, when: datetime) -> None:
        with self._cond:
            if self._when.get(key) != when:
                return  # replaced or cancelled meanwhile
            del self._when[key]
        self.add(key)

    # -- working ----------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next key (now processing), waiting up to `timeout` seconds for one (None:
        for ever). None when the queue shuts down, or none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue and not self._shutting_down:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._shutting_down:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: K) -> None:
        """The worker is done with `key`; added again meanwhile, it is queued now."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._cond.notify()
            self._cond.notify_all()  # `shutdown` waits for the processing set to empty

    # -- stopping ---------------------------------------------------------------------------

    def shutdown(self, grace: float) -> bool:
        """Stop handing out work and drop what waits; wait up to `grace` seconds for the keys
        being processed. True when none is left processing."""
        deadline = time.monotonic() + grace
        with self._cond:
            self._shutting_down = True
            self._queue.clear()
            self._dirty.clear()
            timers, self._when = list(self._when), {}
            self._cond.notify_all()
        for key in timers:
            self._timer.cancel(_name(key))
        with self._cond:
            while self._processing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- looking ----------------------------------------------------------------------------

    def processing(self) -> set[K]:
        with self._cond:
            return set(self._processing)

    def scheduled(self) -> dict[K, datetime]:
        """Each key's pending delayed add."""
        with self._cond:
            return dict(self._when)

    def __len__(self) -> int:
        """Keys waiting to be handed out."""
        with self._cond:
            return len(self._queue)


def _name(key: Hashable) -> str:
    return f"renew:{key}"
