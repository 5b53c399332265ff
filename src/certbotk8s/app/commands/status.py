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
from certbotk8s.core.renewal.reasons import ReasonCode
from certbotk8s.core.sources.text import printable
from certbotk8s.core.state import secret_meta

if TYPE_CHECKING:
    from certbotk8s.app.runtime import Runtime

SOURCE_GONE = "SourceGone"


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
    # The same facts for machines (`-o json|yaml`): see `machine`.
    state: str = ""
    reason: str = ""
    not_after_at: datetime | None = None
    next_renewal_at: datetime | None = None
    failures: int = 0
    next_attempt: datetime | None = None

    def as_dict(self) -> dict[str, str]:
        """The table's cells by column (display strings)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, str)}

    def machine(self) -> dict[str, object]:
        """`status -o json|yaml`: RFC 3339 times (null when none), numbers, reason codes.

        `state`: `scheduled` (renews at `next_renewal`), `due` (ordered at the next pass),
        `waiting` (due, held by `wait` until `next_renewal`, null when an event ends it),
        `refused`, `orphaned` (no source wants it any more), `error`."""
        return {
            "source": self.source,
            "hosts": [h for h in self.hosts.split(",") if h and h != "-"],
            "secret": self.secret if self.secret != "-" else None,
            "state": self.state,
            "reason": self.reason,
            "why": self.why,
            "not_after": _rfc3339(self.not_after_at),
            "next_renewal": _rfc3339(self.next_renewal_at),
            "wait": self.wait or None,
            "failures": self.failures,
            "next_attempt": _rfc3339(self.next_attempt),
            "last_error": self.last_error or None,
        }


def _rfc3339(value: datetime | None) -> str | None:
    return secret_meta.format_time(value) if value is not None else None


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def collect(runtime: Runtime, namespaces: Sequence[str],
            current: Survey | None = None) -> list[StatusRow]:
    """One row per certificate of these namespaces; `current`: a survey of them already made."""
    current = current or survey(runtime.deps, namespaces)
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
                              last_error=problem.message, state="refused",
                              reason=problem.reason))
    # Certificates whose source is gone (from the records): kept (never deleted), not renewed.
    for ref, record in sorted(runtime.deps.records.snapshot().items()):
        if ref in seen or (namespaces and ref.namespace not in namespaces):
            continue
        if secret_meta.HOSTS not in record:
            continue  # a failure state only: no certificate was ever written there
        not_after = secret_meta.parse_time(record.get(secret_meta.NOT_AFTER, ""))
        rows.append(StatusRow(
            source=record.get(secret_meta.SOURCE, "?") + " (gone)",
            hosts=record.get(secret_meta.HOSTS, "-"), secret=str(ref),
            not_after=_time(not_after),
            next_renewal="never",
            why="no source wants this Secret any more; it is kept, not renewed",
            last_error=record.get(LAST_ERROR, ""),
            state="orphaned", reason=SOURCE_GONE, not_after_at=not_after,
        ))
    return rows


def _row(runtime: Runtime, book: RenewalBook, current: Survey, action: Action,
         now: datetime) -> StatusRow:
    d = action.desired
    observed = current.observed.get(d.secret)
    info = observed.certificate if observed is not None else None
    last_error = observed.recorded.get(LAST_ERROR, "") if observed is not None else ""
    waiting = ""
    reason = action.reason.code.value
    next_when: datetime | None = None
    failure = book.failure_state(d.secret, observed, now, spec=d.spec)
    if action.kind in (ActionKind.NOTHING, ActionKind.REPAIR):
        state, next_when = "scheduled", action.next_renewal
        next_at = _time(action.next_renewal)
        why = (action.renewal.reason.message if action.renewal is not None
               else action.reason.message)
        if action.renewal is not None:
            reason = action.renewal.reason.code.value
        if action.kind is ActionKind.REPAIR:
            why = f"{why}; {action.reason.message}"
    elif action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
        state, next_at, why = "refused", "never", action.reason.message
        last_error = last_error or action.reason.message
    else:
        state, next_when, next_at, why = "due", now, "now", action.reason.message
        if not last_error and d.source_kind is not SourceKind.CONFIG_CERTIFICATE:
            last_error = _last_warning(runtime, d.source)
        wait = lifecycle.why_wait(lifecycle.OrderFacts(
            d.secret, failure=failure, hold=book.check(action, observed, now)), now)
        if wait is not None:  # the same decision as both modes make before an order
            next_at = _time(wait.until) if wait.until is not None else next_at
            state, next_when = "waiting", wait.until
            why, waiting = f"{wait.message}; {why}", wait.kind.value
            last_error = last_error or failure.last_error
    if d.secret in current.ari_problems:
        why = f"{why} ({current.ari_problems[d.secret]})"
    return StatusRow(
        source=str(d.source), hosts=",".join(d.spec.hosts), secret=str(d.secret),
        not_after=_time(info.not_after if info else None), next_renewal=next_at, why=why,
        last_error=last_error, wait=waiting, state=state, reason=reason,
        not_after_at=info.not_after if info else None, next_renewal_at=next_when,
        failures=failure.failures, next_attempt=failure.next_attempt,
    )


def _failed_row(action: Action, error: InternalError) -> StatusRow:
    d = action.desired
    return StatusRow(source=str(d.source), hosts=",".join(d.spec.hosts), secret=str(d.secret),
                     not_after="-", next_renewal="-", why=INTERNAL_ERROR, last_error=str(error),
                     state="error", reason=ReasonCode.INTERNAL_ERROR.value)


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
