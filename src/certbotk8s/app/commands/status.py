"""`certbotk8s status`: one row per managed certificate, with why it renews when it does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from certbotk8s.adapters.kube.events import list_events
from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.isolation import INTERNAL_ERROR, InternalError, contained
from certbotk8s.app.orders import LAST_ERROR, Survey, survey
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import ObjectRef, SecretRef, SourceKind
from certbotk8s.core.renewal import lifecycle
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.sources.text import printable
from certbotk8s.core.state import secret_meta

if TYPE_CHECKING:
    from certbotk8s.app.runtime import Runtime


@dataclass(frozen=True)
class StatusRow:
    source: str
    hosts: str
    secret: str
    not_after: str
    next_renewal: str
    why: str
    last_error: str
    # Why a certificate that is due is not ordered now (core.renewal.lifecycle's WaitKind, e.g.
    # `BackingOff`, `RateLimitHold`); "" when it is not due or nothing holds it.
    wait: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def collect(runtime: Runtime, namespaces: Sequence[str]) -> list[StatusRow]:
    current = survey(runtime.deps, namespaces)
    book = RenewalBook(runtime.deps.config, runtime.deps.records, runtime.deps.ledger)
    book.load()  # the budget's orders and failed authorizations: a hold is a wait shown
    now = runtime.deps.clock()
    book.set_issued(runtime.deps.records.snapshot(), now)
    rows: list[StatusRow] = []
    seen: set[SecretRef] = set()
    for action in current.actions:
        seen.add(action.desired.secret)
        rows.append(contained(action.desired, "showing",
                              partial(_row, runtime, book, current, action, now),
                              partial(_failed_row, action)))
    for problem in current.discovery.problems:
        rows.append(StatusRow(source=str(problem.source), hosts="-", secret="-", not_after="-",
                              next_renewal="never", why=problem.reason,
                              last_error=problem.message))
    # Certificates whose source is gone (from the records): kept (never deleted), not renewed.
    for ref, record in sorted(runtime.deps.records.snapshot().items()):
        if ref in seen or (namespaces and ref.namespace not in namespaces):
            continue
        if secret_meta.HOSTS not in record:
            continue  # a failure state only: no certificate was ever written there
        rows.append(StatusRow(
            source=record.get(secret_meta.SOURCE, "?") + " (gone)",
            hosts=record.get(secret_meta.HOSTS, "-"), secret=str(ref),
            not_after=_time(secret_meta.parse_time(record.get(secret_meta.NOT_AFTER, ""))),
            next_renewal="never",
            why="no source wants this Secret any more; it is kept, not renewed",
            last_error=record.get(LAST_ERROR, ""),
        ))
    return rows


def _row(runtime: Runtime, book: RenewalBook, current: Survey, action: Action,
         now: datetime) -> StatusRow:
    d = action.desired
    observed = current.observed.get(d.secret)
    info = observed.certificate if observed is not None else None
    last_error = observed.recorded.get(LAST_ERROR, "") if observed is not None else ""
    waiting = ""
    if action.kind in (ActionKind.NOTHING, ActionKind.REPAIR):
        next_at = _time(action.next_renewal)
        why = (action.renewal.reason.message if action.renewal is not None
               else action.reason.message)
        if action.kind is ActionKind.REPAIR:
            why = f"{why}; {action.reason.message}"
    elif action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
        next_at, why = "never", action.reason.message
        last_error = last_error or action.reason.message
    else:
        next_at, why = "now", action.reason.message
        if not last_error and d.source_kind is not SourceKind.DEFAULT_CERTIFICATE:
            last_error = _last_warning(runtime, d.source)
        failure = book.failure_state(d.secret, observed, now, spec=d.spec)
        wait = lifecycle.why_wait(lifecycle.OrderFacts(
            d.secret, failure=failure, hold=book.check(action, observed, now)), now)
        if wait is not None:  # the same decision as both modes make before an order
            next_at = _time(wait.until) if wait.until is not None else next_at
            why, waiting = f"{wait.message}; {why}", wait.kind.value
            last_error = last_error or failure.last_error
    if d.secret in current.ari_problems:
        why = f"{why} ({current.ari_problems[d.secret]})"
    return StatusRow(
        source=str(d.source), hosts=",".join(d.spec.hosts), secret=str(d.secret),
        not_after=_time(info.not_after if info else None), next_renewal=next_at, why=why,
        last_error=last_error, wait=waiting,
    )


def _failed_row(action: Action, error: InternalError) -> StatusRow:
    d = action.desired
    return StatusRow(source=str(d.source), hosts=",".join(d.spec.hosts), secret=str(d.secret),
                     not_after="-", next_renewal="-", why=INTERNAL_ERROR, last_error=str(error))


def _last_warning(runtime: Runtime, source: ObjectRef) -> str:
    """The newest Warning Event on a source (why a certificate that never arrived is stuck)."""
    try:
        events = list_events(runtime.api, source)
    except CertbotK8sError:
        return ""
    warnings = [e for e in events if e.type == "Warning"]
    return f"{warnings[-1].reason}: {warnings[-1].message}" if warnings else ""


COLUMNS = ("SOURCE", "HOSTS", "SECRET", "NOT AFTER", "NEXT RENEWAL", "WAIT", "WHY",
           "LAST ERROR")


def render_table(rows: Sequence[StatusRow], width: int = 60) -> str:
    """Aligned columns; every cell terminal-safe (tenant text may hold escape sequences)."""

    def clip(text: str) -> str:
        text = printable(text)
        return text if len(text) <= width else text[: width - 1] + "…"

    cells: list[tuple[str, ...]] = [COLUMNS]
    cells += [(r.source, r.hosts, r.secret, r.not_after, r.next_renewal, r.wait or "-", r.why,
               r.last_error) for r in rows]
    cells = [tuple(clip(c) for c in row) for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells
    )
