"""The renewal ledger's contents and their JSON form (the adapter stores it in one Secret).

What the certificate records hold (issuances, `issued-7d`; failure state) is not repeated
here. Kept: new orders of the last 3 hours (time, namespace, exempt) and failed authorizations
of the last hour (time, identifier). Anything malformed is skipped: a damaged ledger only
costs history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from certbotk8s.core.budget.ratelimit import FailedAuthz, Limits, OrderRecord
from certbotk8s.core.state.secret_meta import format_time, parse_time

ORDERS = "orders"
FAILED_AUTHZ = "failedAuthz"


@dataclass
class Ledger:
    orders: list[OrderRecord] = field(default_factory=list)
    failed_authz: list[FailedAuthz] = field(default_factory=list)

    def prune(self, now: datetime, limits: Limits | None = None) -> None:
        """Drop records that can no longer count (outside the longest window we keep)."""
        limits = limits or Limits()
        keep_orders = max(limits.orders_per_account_window, timedelta(hours=3))
        keep_authz = max(limits.failed_authz_window, timedelta(hours=1))
        self.orders = [o for o in self.orders if o.at > now - keep_orders]
        self.failed_authz = [f for f in self.failed_authz if f.at > now - keep_authz]


def _time(value: object) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def from_json(values: Mapping[str, Any]) -> Ledger:
    ledger = Ledger()
    for entry in values.get(ORDERS) or []:
        if isinstance(entry, list) and len(entry) == 3 and (at := _time(entry[0])) is not None:
            ledger.orders.append(OrderRecord(at, str(entry[1]), bool(entry[2])))
    for entry in values.get(FAILED_AUTHZ) or []:
        if isinstance(entry, list) and len(entry) == 2 and (at := _time(entry[0])) is not None:
            ledger.failed_authz.append(FailedAuthz(str(entry[1]), at))
    return ledger


def to_json(ledger: Ledger) -> dict[str, Any]:
    return {
        ORDERS: [[format_time(o.at), o.namespace, o.exempt] for o in ledger.orders],
        FAILED_AUTHZ: [[format_time(f.at), f.identifier] for f in ledger.failed_authz],
    }
