"""Service health: while an issuer's CA (or a DNS provider's server) is down, one probe decides
when it is back. Keys are issuer names here; `OutageGate` uses the same class for DNS providers.

An order that fails with `AcmeCaUnavailable` (connection refused, timeouts, 5xx that outlived
the transport retries, 503 with a distant Retry-After) marks its issuer down. From then on no
order for that issuer is placed (no storm of orders each finding out on its own); one thread
per down issuer GETs the directory, first after `first_delay`, then doubling up to `max_delay`
— and not before the CA's Retry-After, unless a waiting certificate needs the CA sooner
(`need_by`: the caller passes a fraction of its remaining life). The first 200 marks the
issuer up and `on_back(issuer)` wakes the caller, which submits all due work at once.

A CA that goes down again soon after coming back (directory fine, orders failing) makes the
next probe wait longer (`flaps`), reset by the next successful order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from certbotk8s.core.errors import Outage

log = logging.getLogger(__name__)

Probe = Callable[[str], str | None]  # issuer -> None when its directory answers, else why not
StateListener = Callable[[str, bool], None]  # issuer, up


@dataclass
class _Down:
    reason: str
    since: float
    not_before: float  # the CA's Retry-After (monotonic), or `since`
    need_by: float | None = None  # earliest moment a waiting certificate needs the CA
    last_probe: str = ""

    def describe(self) -> str:
        return f"{self.reason} (last probe: {self.last_probe})" if self.last_probe else self.reason


class ServiceProbe:
    def __init__(self, probe: Probe, on_back: Callable[[str], None], *,
                 on_state: StateListener | None = None, first_delay: float = 0.5,
                 max_delay: float = 5.0, flap_window: float = 60.0, max_flap_delay: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 label: str = "ACME CA of issuer") -> None:
        self._probe = probe
        self._label = label  # what a key names, for the log
        self._on_back = on_back
        self._on_state = on_state
        self._first = first_delay
        self._max = max_delay
        self._flap_window = flap_window
        self._max_flap_delay = max_flap_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._down: dict[str, _Down] = {}
        self._back_at: dict[str, float] = {}
        self._flaps: dict[str, int] = {}
        self._stopping = False
        self._threads: dict[str, threading.Thread] = {}

    def down(self, issuer: str) -> str | None:
        """Why the issuer's CA is considered down (for Events and status), or None if up."""
        with self._lock:
            state = self._down.get(issuer)
            return state.describe() if state is not None else None

    def report(self, issuer: str, error: Outage) -> None:
        """An order met the CA down: hold every order of `issuer` until a probe succeeds."""
        now = self._clock()
        hold = getattr(error, "retry_after_seconds", None) or 0.0
        with self._lock:
            if self._stopping:
                return
            state = self._down.get(issuer)
            if state is not None:
                state.not_before = max(state.not_before, now + hold)
                self._wake.notify_all()
                return
            back = self._back_at.get(issuer)
            if back is not None and now - back < self._flap_window:
                self._flaps[issuer] = self._flaps.get(issuer, 0) + 1
            self._down[issuer] = _Down(str(error), now, now + hold)
            thread = threading.Thread(target=self._run, args=(issuer,), daemon=True,
                                      name=f"probe-{issuer}")
            self._threads[issuer] = thread
        log.warning("%s %s is down (%s): its orders wait until a probe gets an answer",
                    self._label, issuer, error)
        self._notify(issuer, False)
        thread.start()

    def need_by(self, issuer: str, seconds: float) -> None:
        """A waiting certificate needs the CA within `seconds`: probe by then at the latest,
        whatever Retry-After said."""
        with self._lock:
            state = self._down.get(issuer)
            if state is None:
                return
            when = self._clock() + max(0.0, seconds)
            if state.need_by is None or when < state.need_by:
                state.need_by = when
                self._wake.notify_all()

    def succeeded(self, issuer: str) -> None:
        """An order for `issuer` completed: the CA works, forget earlier flapping."""
        with self._lock:
            self._flaps.pop(issuer, None)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()

    # -- the probe thread ----------------------------------------------------------------

    def _first_delay(self, issuer: str) -> float:
        flaps = self._flaps.get(issuer, 0)
        return min(self._first * (4 ** flaps), self._max_flap_delay) if flaps else self._first

    def _run(self, issuer: str) -> None:
        with self._lock:
            delay = self._first_delay(issuer)
            next_probe = self._clock() + delay
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    state = self._down[issuer]
                    due = max(next_probe, state.not_before)
                    if state.need_by is not None:
                        due = min(due, max(next_probe, state.need_by))
                    wait = due - self._clock()
                    if wait <= 0:
                        break
                    self._wake.wait(wait)
            reason = self._probe(issuer)
            if reason is None:
                break
            with self._lock:
                self._down[issuer].last_probe = reason
            delay = min(delay * 2, max(self._max, delay))
            next_probe = self._clock() + delay
        with self._lock:
            state = self._down.pop(issuer)
            self._back_at[issuer] = self._clock()
            self._threads.pop(issuer, None)
        log.info("%s %s answers again after %.1fs; due orders resume", self._label, issuer,
                 self._clock() - state.since)
        self._notify(issuer, True)
        self._on_back(issuer)

    def _notify(self, issuer: str, up: bool) -> None:
        if self._on_state is not None:
            try:
                self._on_state(issuer, up)
            except Exception:  # a metrics hook must not stop the probe
                log.exception("%s state listener failed", self._label)
