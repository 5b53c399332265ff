"""APScheduler jobs that wake the reconciler: the periodic resync and one job per Secret."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from certbotk8s.core.model import SecretRef


class WakeSchedule:
    """Sets `wake` at each Secret's renewal (or retry) moment and every `resync` seconds."""

    def __init__(self, wake: threading.Event, resync: float) -> None:
        self._wake = wake
        self._resync = resync
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._stopped = False
        self._lock = threading.Lock()  # `at` and `cancel` come from the reconciler and workers
        self._when: dict[SecretRef, datetime] = {}  # skip re-adding an unchanged job

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

    def at(self, ref: SecretRef, when: datetime) -> None:
        """Wake at `when` for `ref` (replaces the Secret's earlier job)."""
        with self._lock:  # the job and `_when` change together
            if self._stopped or self._when.get(ref) == when:
                return
            self._when[ref] = when
            self._scheduler.add_job(self._wake.set, "date", run_date=when, id=f"renew:{ref}",
                                    replace_existing=True, misfire_grace_time=None)

    def cancel(self, ref: SecretRef) -> None:
        with self._lock:
            self._when.pop(ref, None)
            job = self._scheduler.get_job(f"renew:{ref}")
            if job is not None:
                job.remove()

    def scheduled(self) -> dict[SecretRef, datetime]:
        """When each Secret's renewal (or retry) is due, as last scheduled."""
        with self._lock:
            return dict(self._when)

    def next_runs(self) -> dict[str, datetime]:
        """Scheduled renewal jobs (for tests and status)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()
                if job.id.startswith("renew:")}
