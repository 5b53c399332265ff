"""The order of a `renew --once` pass (core/renewal/urgency.py): expired, past the floor, ARI renew
now, other orders by expiry, then what orders nothing; not Secret-name order."""

from __future__ import annotations

from datetime import timedelta

from certbotk8s.core.model import ObservedSecret, SecretRef
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.renewal.urgency import by_urgency
from tests.unit.factories import T0, cert_info, desired, observed_for

DAY = timedelta(days=1)
NOW = T0 + 100 * DAY


def _case(name: str, kind: ActionKind, code: ReasonCode, not_before_days: float | None,
          ) -> tuple[Action, ObservedSecret | None]:
    d = desired(f"{name}.example.com", secret=SecretRef("default", name))
    info = (cert_info(f"{name}.example.com", not_before=T0 + not_before_days * DAY)
            if not_before_days is not None else None)
    return Action(kind, d, Reason(code, name)), (observed_for(d, info) if info else None)


def test_a_pass_orders_the_most_urgent_first() -> None:
    cases = dict(
        a_nothing=_case("a-nothing", ActionKind.NOTHING, ReasonCode.UP_TO_DATE, 90),
        b_fraction=_case("b-fraction", ActionKind.RENEW, ReasonCode.EXPIRING_LIFETIME_FRACTION,
                         35),
        c_ari=_case("c-ari", ActionKind.RENEW, ReasonCode.INSIDE_ARI_WINDOW, 60),
        d_new=_case("d-new", ActionKind.ISSUE, ReasonCode.SECRET_MISSING, None),
        e_floor=_case("e-floor", ActionKind.RENEW, ReasonCode.LIFETIME_FLOOR, 15),
        f_expired=_case("f-expired", ActionKind.RENEW, ReasonCode.EXPIRED, 5),
        g_expired_later=_case("g-expired-later", ActionKind.RENEW, ReasonCode.EXPIRED, 8),
    )
    actions = [a for a, _ in cases.values()]
    observed = {a.desired.secret: o for a, o in cases.values()}
    ordered = by_urgency(actions, observed, NOW)
    assert [a.desired.secret.name for a in ordered] == [
        "f-expired", "g-expired-later", "e-floor", "c-ari", "d-new", "b-fraction", "a-nothing"]
