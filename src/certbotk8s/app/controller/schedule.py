"""APScheduler: the periodic jobs (resync, ARI refresh, flushes, housekeeping) and the timer of
the work queue's delayed adds (app.controller.work_queue.Timer: one job per Secret)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler


class WakeSchedule:
    """Sets `wake` every `resync` seconds (a full pass); runs the periodic jobs; and, as the
    work queue's Timer, calls each Secret's job at its renewal (or retry) moment."""

    def __init__(self, wake: threading.Event, resync: float) -> None:
        self._wake = wake
        self._resync = resync
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._stopped = False
        self._lock = threading.Lock()  # `at` and `cancel` come from the queue's callers

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(self._wake.set, "interval", seconds=self._resync, id="resync")

    def every(self, job_id: str, func: Callable[[], None], interval: timedelta,
              first: datetime) -> None:
        # A busy process may wake late: run late rather than skip (misfire), once (coalesce).
        self._scheduler.add_job(func, "interval", seconds=interval.total_seconds(), id=job_id,
                                next_run_time=first, misfire_grace_time=None, coalesce=True)

    def stop(self) -> None:
        with self._lock:  # no job is added after this
            self._stopped = True
        self._scheduler.shutdown(wait=False)

    def at(self, name: str, when: datetime, fire: Callable[[], None]) -> None:
        """Call `fire` at `when` (replaces the job of that name)."""
        with self._lock:
            if self._stopped:
                return
            self._scheduler.add_job(fire, "date", run_date=when, id=name,
                                    replace_existing=True, misfire_grace_time=None)

    def cancel(self, name: str) -> None:
        with self._lock:
            if self._stopped:
                return
            with contextlib.suppress(JobLookupError):  # never scheduled, or fired meanwhile
                self._scheduler.remove_job(name)

    def next_runs(self) -> dict[str, datetime]:
        """Scheduled renewal jobs (for tests and status)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()
                if job.id.startswith("renew:")}
