"""The order of a `renew --once` pass (core/renewal/urgency.py): expired, past the floor, ARI renew
now, other orders by expiry, then what orders nothing; not Secret-name order."""

from __future__ import annotations

from datetime import timedelta

from certbotk8s.core.model import ObservedSecret, RenewalWindow, SecretRef
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


def test_a_window_the_ca_moved_into_the_past_goes_before_scheduled_ari_renewals() -> None:
    """After a mass revocation the CA's ARI says "renew now" for thousands of certificates: a
    run that cannot place them all must not spend itself on routine renewals that still have
    days (6-day certificates expire sooner than a revoked 90-day one, but their windows are
    open)."""
    revoked_d = desired("revoked.example.com", secret=SecretRef("default", "revoked"))
    revoked = cert_info("revoked.example.com", not_before=NOW - 30 * DAY)
    routine_d = desired("routine.example.com", secret=SecretRef("default", "routine"))
    routine = cert_info("routine.example.com", not_before=NOW - 3 * DAY, lifetime=6 * DAY)
    ari = {revoked_d.secret: RenewalWindow(NOW - timedelta(hours=2), NOW - timedelta(hours=1),
                                           revoked.ari_cert_id),
           routine_d.secret: RenewalWindow(NOW - timedelta(hours=3), NOW + timedelta(hours=6),
                                           routine.ari_cert_id)}
    actions = [Action(ActionKind.RENEW, d, Reason(ReasonCode.INSIDE_ARI_WINDOW, "ari"))
               for d in (routine_d, revoked_d)]
    observed = {routine_d.secret: observed_for(routine_d, routine),
                revoked_d.secret: observed_for(revoked_d, revoked)}
    assert [a.desired.secret.name for a in by_urgency(actions, observed, NOW, ari)] == [
        "revoked", "routine"]
    # without the windows (or with a window of another certificate): by expiry, as before
    assert [a.desired.secret.name for a in by_urgency(actions, observed, NOW)] == [
        "routine", "revoked"]
