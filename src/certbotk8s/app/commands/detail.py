"""`certbotk8s status NAMESPACE/SECRET`: one certificate in detail.

What is wanted (the source's spec), what is held (the Secret's certificate), the chosen renewal
moment and the rule behind it, the last failure and the next attempt, and the recent Events on
its source. Built as plain data (RFC 3339 times, numbers, reason codes) for `-o json|yaml`; the
text view renders the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from certbotk8s.adapters.kube.events import EventRow, list_events
from certbotk8s.app.commands import status
from certbotk8s.app.orders import survey
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import DesiredCertificate, ObjectRef, ObservedSecret, SecretRef
from certbotk8s.core.renewal.moment import RenewalTime
from certbotk8s.core.sources.text import printable
from certbotk8s.core.state import secret_meta

if TYPE_CHECKING:
    from certbotk8s.app.runtime import Runtime

RECENT_EVENTS = 10

Detail = dict[str, object]
EventLister = Callable[[ObjectRef], list[EventRow]]


def _t(value: datetime | None) -> str | None:
    return secret_meta.format_time(value) if value is not None else None


def collect(runtime: Runtime, ref: SecretRef, events: EventLister | None = None
            ) -> Detail | None:
    """The detail of `ref`, or None when no source wants it and no record names it."""
    current = survey(runtime.deps, [ref.namespace])
    rows = [r for r in status.collect(runtime, [ref.namespace], current)
            if r.secret == str(ref)]
    action = next((a for a in current.actions if a.desired.secret == ref), None)
    record = runtime.deps.records.get(ref)
    if not rows and action is None:
        return None
    observed = current.observed.get(ref)
    detail: Detail = {"secret": str(ref)}
    detail.update(rows[0].machine() if rows else {})
    detail["wanted"] = _wanted(action.desired) if action is not None else None
    detail["held"] = _held(observed, record)
    detail["renewal"] = (_renewal(action.renewal) if action is not None
                         and action.renewal is not None else None)
    detail["ari_note"] = current.ari_problems.get(ref)
    failure = _failure(record)
    detail["last_failure"] = failure
    lister = events or (lambda obj: list_events(runtime.api, obj))
    detail["events"] = _events(lister, action.desired.source) if action is not None else []
    return detail


def _wanted(d: DesiredCertificate) -> Detail:
    s = d.spec
    return {
        "source": str(d.source),
        "source_kind": d.source_kind.value,
        "hosts": list(s.hosts),
        "issuer": s.issuer,
        "challenge": s.challenge.value,
        "dns_provider": s.dns_provider,
        "key_type": s.key_type.value,
        "profile": s.profile,
        "renew_before_seconds": (int(s.renew_before.total_seconds())
                                 if s.renew_before is not None else None),
    }


def _held(observed: ObservedSecret | None, record: Mapping[str, str]) -> Detail:
    if observed is None:
        return {"exists": False}
    info = observed.certificate
    held: Detail = {"exists": True, "managed": observed.managed,
                    "certificate": None, "parse_error": observed.parse_error}
    if info is not None:
        held["certificate"] = {
            "hosts": list(info.sans),
            "not_before": _t(info.not_before),
            "not_after": _t(info.not_after),
            "serial": info.serial,
            "key_type": info.key_type.value if info.key_type is not None else None,
            "key_matches": observed.key_matches,
            "issuer": record.get(secret_meta.ISSUER) or None,
            "issued_at": record.get(secret_meta.ISSUED_AT) or None,
        }
    return held


def _renewal(renewal: RenewalTime) -> Detail:
    moment = renewal.moment
    return {
        "at": _t(renewal.at),
        "reason": renewal.reason.code.value,
        "why": renewal.reason.message,
        "floor": _t(renewal.floor),
        "ari_window": ({"start": _t(moment.window.start), "end": _t(moment.window.end)}
                       if moment is not None else None),
        "ari_moment": _t(moment.at) if moment is not None else None,
        "ignored_window": renewal.ignored_window,
        "ari_held": renewal.ari_capped,
    }


def _failure(record: Mapping[str, str]) -> Detail | None:
    state = secret_meta.parse_failures(record)
    if state.failures == 0:
        return None
    # (the next attempt that applies is the top-level `next_attempt`: a changed spec or a
    # renewal request lifts this backoff, core.renewal.backoff.for_attempt)
    return {"failures": state.failures, "at": _t(state.failed_at),
            "message": state.last_error or None}


def _events(lister: EventLister, source: ObjectRef) -> list[Detail]:
    try:
        found = lister(source)
    except CertbotK8sError as e:
        return [{"type": "Error", "reason": "EventsUnreadable", "message": str(e), "time": None}]
    return [{"type": e.type, "reason": e.reason, "message": e.message, "time": _t(e.time)}
            for e in found[-RECENT_EVENTS:]]


def render_text(detail: Detail) -> str:
    """Indented `key: value` lines, every value terminal-safe (tenant text)."""
    lines: list[str] = []

    def walk(value: object, indent: str, key: str) -> None:
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            for k, v in value.items():
                walk(v, indent + "  ", str(k))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{indent}{key}:")
            for item in value:
                parts = [f"{v}" for v in item.values() if v is not None]
                lines.append(f"{indent}  - " + printable("  ".join(parts)))
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else value
            shown = "-" if text is None or text == "" else str(text)
            lines.append(f"{indent}{key}: {printable(shown)}")

    for k, v in detail.items():
        walk(v, "", k)
    return "\n".join(lines)
