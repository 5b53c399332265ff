"""In-memory stand-ins for the stores the controller keeps in its own namespace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certbotk8s.core.model import SecretRef


class FakeRecordStore:
    """app.records.RecordStore in memory; counts saves (one per flush that had changes)."""

    def __init__(self) -> None:
        self.records: dict[SecretRef, dict[str, str]] = {}
        self.saves = 0

    def load(self) -> dict[SecretRef, dict[str, str]]:
        return {ref: dict(record) for ref, record in self.records.items()}

    def load_one(self, ref: SecretRef) -> dict[str, str] | None:
        record = self.records.get(ref)
        return dict(record) if record is not None else None

    def save(self, changes: Mapping[SecretRef, Mapping[str, str] | None]) -> None:
        self.saves += 1
        for ref, record in changes.items():
            if record is None:
                self.records.pop(ref, None)
            else:
                self.records[ref] = dict(record)


class FakeLedger:
    """The renewal ledger Secret's data in memory (app.budget.LedgerStore)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        return dict(self.values)

    def save(self, values: dict[str, Any]) -> None:
        self.values.update(values)
