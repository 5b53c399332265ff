"""`certbotk8s plan`: what a pass would do, as lines for people or data for machines."""

from __future__ import annotations

from certbotk8s.app.orders import Survey
from certbotk8s.core.sources.text import printable
from certbotk8s.core.state.secret_meta import format_time


def lines(current: Survey) -> list[str]:
    """One line per refused source and per certificate (terminal-safe: tenant names)."""
    out = [printable(f"refuse   {p.source}: {p.reason}: {p.message}")
           for p in current.discovery.problems]
    for action in current.actions:
        d = action.desired
        when = ""
        if action.next_renewal is not None:
            when = f" (next renewal {action.next_renewal.strftime('%Y-%m-%d %H:%M UTC')})"
        note = current.ari_problems.get(d.secret)
        out.append(printable(f"{action.kind.value.lower():8} {d.secret} <- {d.source} "
                             f"[{', '.join(d.spec.hosts)}]: {action.reason.message}{when}"
                             + (f"; note: {note}" if note else "")))
    if current.missing_apis:
        out.append(f"note: the cluster does not serve {', '.join(current.missing_apis)}")
    return out


def machine(current: Survey) -> dict[str, object]:
    """`plan -o json|yaml`: `actions` (what a pass would do per Secret: `action` issue, renew,
    nothing, repair, refuse or conflict, with the reason code), `refused` sources, and the
    APIs the cluster does not serve."""
    return {
        "actions": [{
            "action": a.kind.value.lower(),
            "secret": str(a.desired.secret),
            "source": str(a.desired.source),
            "hosts": list(a.desired.spec.hosts),
            "reason": a.reason.code.value,
            "why": a.reason.message,
            "next_renewal": (format_time(a.next_renewal) if a.next_renewal is not None
                             else None),
            "ari_note": current.ari_problems.get(a.desired.secret),
        } for a in current.actions],
        "refused": [{"source": str(p.source), "reason": p.reason, "why": p.message}
                    for p in current.discovery.problems],
        "missing_apis": list(current.missing_apis),
    }
