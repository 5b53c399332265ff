"""The controller's certificate records in memory, written through to its namespace.

Both modes read every decision's memory from here (claims, issuance history, backoff, the
chosen renewal moment; core.state.records says what a record holds), never from a tenant's Secret.
Thread-safe. Writes are batched: `flush` saves what changed, at most every `save_every`
seconds unless forced (a burst of orders costs one write per shard touched, not one per
change); a kill loses at most that much. A failed save keeps the changes for the next flush.

Written behind, a change made with a `hold` (an order placed: its end follows,
`ORDER_END_HOLD`; a certificate issued: its ARI moment follows, `ARI_MOMENT_HOLD`) may wait
that many seconds for the next change to that record, so that the two go in one write:
flushes leave it until another change to that record comes without a hold, or the hold runs
out (a held change after a held one sets the hold again; one after a change already due does
not delay it). `flush(final=True)` (stopping) writes it anyway. Not written behind (a CronJob
run), holds are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

from certbotk8s.app.throttle import WriteThrottle
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import secret_meta

log = logging.getLogger(__name__)

# Seconds a change may wait for the record's next one (the controller flushes every 5 s):
# an order's in-flight entry for the order's end (an order that ends sooner writes none of
# its own; one still running is saved at the flush after), a new certificate's record for
# its ARI moment (the controller reads new certificates' ARI windows every 5 s: two rounds).
ORDER_END_HOLD = 3.0
ARI_MOMENT_HOLD = 10.0


class RecordStore(Protocol):
    """Where records persist (adapters/kube/records.py): see its contract."""

    def load(self) -> dict[SecretRef, dict[str, str]]: ...
    def load_one(self, ref: SecretRef) -> dict[str, str] | None: ...
    def save(self, changes: Mapping[SecretRef, Mapping[str, str] | None]) -> None: ...


class Records:
    def __init__(self, store: RecordStore | None = None, *, save_every: float = 1.0,
                 write_behind: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`write_behind`: changes are saved only by `flush` calls of the owner (the controller
        flushes every 5 s from its scheduler), never on the thread that made them (an order
        worker must not wait for a shard write); otherwise each change flushes when the
        throttle allows (a CronJob run). `clock`: monotonic seconds (holds)."""
        self._store = store
        self._write_behind = write_behind
        self._clock = clock
        self._held: dict[SecretRef, float] = {}  # dirty records waiting: until (clock)
        self._throttle = WriteThrottle(save_every)
        self._lock = threading.RLock()
        self._table: dict[SecretRef, dict[str, str]] = {}
        self._dirty: set[SecretRef] = set()

    # -- reading ----------------------------------------------------------------------------------

    def load(self) -> bool:
        """Read every record (at start, when becoming leader, each CronJob run). Changes not yet
        saved win over what is read. A failure keeps what we have and returns False."""
        if self._store is None:
            return True
        try:
            loaded = self._store.load()
        except CertbotK8sError as e:
            log.warning("cannot read the certificate records: %s", e)
            return False
        with self._lock:
            mine = {ref: self._table[ref] for ref in self._dirty if ref in self._table}
            self._table = {**loaded, **mine}
        return True

    def reload(self, ref: SecretRef) -> None:
        """Read `ref`'s record again from the store: another certbotk8s writer (a CronJob run
        beside the controller) changed its Secret and may have recorded an issuance. The
        issuance histories are merged; a record changed here and not yet saved keeps the rest."""
        if self._store is None:
            return
        try:
            stored = self._store.load_one(ref)
        except CertbotK8sError as e:
            log.info("cannot read the record of %s again: %s", ref, e)
            return
        if stored is None:
            return
        with self._lock:
            mine = self._table.get(ref, {})
            merged = dict(mine) if ref in self._dirty else dict(stored)
            # Each issuance once: as many entries of one second as either side holds.
            both = _entries(mine) | _entries(stored)
            history = ",".join(sorted(both.elements()))
            if history:
                merged[secret_meta.ISSUANCE_HISTORY] = history
            self._table[ref] = merged

    def get(self, ref: SecretRef) -> dict[str, str]:
        """`ref`'s record (a copy; empty when there is none)."""
        with self._lock:
            return dict(self._table.get(ref, {}))

    def snapshot(self) -> dict[SecretRef, Mapping[str, str]]:
        """Every record (read-only: records are replaced, never changed in place)."""
        with self._lock:
            return dict(self._table)

    def unsaved(self) -> int:
        """How many records changed since they were last saved (held ones too)."""
        with self._lock:
            return len(self._dirty)

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)

    # -- writing ----------------------------------------------------------------------------------

    def update(self, ref: SecretRef, values: Mapping[str, str | None],
               hold: float = 0.0) -> None:
        """Set these keys of `ref`'s record (None removes one); other keys stay. A record left
        with no key is removed. `hold`: see the module docstring."""
        self.update_if(ref, {}, values, hold)

    def update_if(self, ref: SecretRef, expected: Mapping[str, str],
                  values: Mapping[str, str | None], hold: float = 0.0) -> bool:
        """`update` only while `ref`'s record holds every `expected` value (one step under the
        lock: no other change comes between); whether it did."""
        with self._lock:
            before = self._table.get(ref, {})
            if any(before.get(key) != value for key, value in expected.items()):
                return False
            record = dict(before)
            for key, value in values.items():
                if value is None:
                    record.pop(key, None)
                else:
                    record[key] = value
            if record != before:
                if record:
                    self._table[ref] = record
                else:
                    self._table.pop(ref, None)
                self._mark(ref, hold)
        self._changed()
        return True

    def replace(self, ref: SecretRef, record: Mapping[str, str],
                hold: float = 0.0) -> None:
        with self._lock:
            self._table[ref] = dict(record)
            self._mark(ref, hold)
        self._changed()

    def remove(self, ref: SecretRef) -> None:
        with self._lock:
            if self._table.pop(ref, None) is not None:
                self._mark(ref, 0.0)
        self._changed()

    def _mark(self, ref: SecretRef, hold: float) -> None:
        """`ref` changed (lock held): due at the next flush, or held (module docstring)."""
        if hold > 0 and self._write_behind and (ref not in self._dirty or ref in self._held):
            self._held[ref] = self._clock() + hold
        else:
            self._held.pop(ref, None)  # due now, with whatever waited for it
        self._dirty.add(ref)

    def _changed(self) -> None:
        if not self._write_behind:
            self.flush()

    def flush(self, force: bool = False, final: bool = False) -> None:
        """Save what changed (`force`: even within `save_every` of the last save); changes
        held for the next one stay, unless `final`."""
        if self._store is None:
            return
        with self._lock:
            now = self._clock()
            due = {ref for ref in self._dirty if final or self._held.get(ref, now) <= now}
            if not due or not self._throttle.allows(force or final):
                return
            changes = {ref: (dict(self._table[ref]) if ref in self._table else None)
                       for ref in due}
            self._dirty -= due
            for ref in due:
                self._held.pop(ref, None)
        try:
            self._store.save(changes)
        except CertbotK8sError as e:
            log.warning("cannot write %d certificate records: %s", len(changes), e)
            with self._lock:
                self._dirty |= set(changes)

    def restore_missing(self) -> int:
        """Write again every record the store lost (someone deleted a shard): the leader's
        periodic check. Returns how many were written."""
        if self._store is None:
            return 0
        try:
            stored = self._store.load()
        except CertbotK8sError as e:
            log.warning("cannot check the certificate records: %s", e)
            return 0
        with self._lock:
            # Only what is gone: a record another writer changed meanwhile is theirs to keep.
            lost = {ref for ref in self._table if ref not in stored}
            lost -= self._dirty  # written at the next flush anyway
            self._dirty |= lost
        if lost:
            log.warning("%d certificate records were missing from the store; "
                        "writing them again", len(lost))
            self.flush(force=True)
        return len(lost)



def _entries(record: Mapping[str, str]) -> Counter[str]:
    return Counter(t for t in record.get(secret_meta.ISSUANCE_HISTORY, "").split(",") if t)
