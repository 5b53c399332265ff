"""The cap on ARI-driven renewals per Secret and the minimum age after one
(core/renewal/ari_gate.py), through the renewal decision and plan(), and how a held-back renewal
is reported."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from certbotk8s.app.ari import ARI_RENEWAL_HELD, report_ari_held
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.model import CertificateInfo, ObjectRef, RenewalWindow
from certbotk8s.core.renewal.ari_gate import ARI_RENEWALS_PER_WEEK, MIN_AGE, ari_gate
from certbotk8s.core.renewal.moment import renewal_time
from certbotk8s.core.renewal.plan import ActionKind, plan
from certbotk8s.core.renewal.reasons import ReasonCode
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, cert_info, desired, observed_for

DAY = timedelta(days=1)


def _record(*entries: tuple[datetime, bool]) -> dict[str, str]:
    text = ""
    for at, replaced in entries:
        text = secret_meta.append_history(text, at, at, replaced)
    return {secret_meta.ISSUANCE_HISTORY: text}


def _renew_now(info: CertificateInfo) -> RenewalWindow:
    """What a CA that keeps asking for a renewal answers: a window at the start of life."""
    return RenewalWindow(info.not_before, info.not_before + timedelta(minutes=1),
                         info.ari_cert_id)


def test_five_ari_renewals_in_a_week_hold_the_sixth_until_the_oldest_leaves() -> None:
    days = [T0 + i * DAY for i in range(ARI_RENEWALS_PER_WEEK)]
    info = cert_info(not_before=days[-1])
    gate = ari_gate(info, _record(*((d, True) for d in days)))
    assert gate is not None and gate.not_before == days[0] + 7 * DAY
    assert "5 ARI renewals in 7 days" in gate.why
    # Four, or five of which one was counted (no `replaces`): only the minimum age.
    for record in (_record(*((d, True) for d in days[1:])),
                   _record((days[0], False), *((d, True) for d in days[1:]))):
        gate = ari_gate(info, record)
        assert gate is not None and gate.not_before == days[-1] + MIN_AGE


def test_minimum_age_only_after_an_ari_renewal_and_at_most_a_tenth_of_life() -> None:
    info = cert_info(not_before=T0)
    assert ari_gate(info, _record((T0, False))) is None  # a first issuance: ARI may act at once
    assert ari_gate(info, {}) is None
    short = cert_info(not_before=T0, lifetime=timedelta(minutes=4))
    gate = ari_gate(short, _record((T0, True)))
    assert gate is not None and gate.not_before == T0 + timedelta(seconds=24)


def test_a_held_ari_moment_falls_back_to_the_gate_or_the_lifetime_fraction() -> None:
    info = cert_info(not_before=T0)
    window = _renew_now(info)
    held = renewal_time(info, None, window, None, ari_gate(info, _record((T0, True))))
    assert held.at == T0 + MIN_AGE
    assert held.ari_capped is not None and held.ari_held(T0 + timedelta(minutes=5))
    assert not held.ari_held(T0 + MIN_AGE)
    assert held.reason.code is ReasonCode.INSIDE_ARI_WINDOW
    capped = ari_gate(info, _record(*((T0 - i * DAY, True) for i in range(5, 0, -1)),
                                    (T0, True)))
    assert capped is not None and capped.not_before == T0 + 3 * DAY  # the cap, not the age
    far = dataclasses.replace(capped, not_before=T0 + 80 * DAY)
    decided = renewal_time(info, None, window, None, far)
    assert decided.at == T0 + 60 * DAY  # 2/3 of the lifetime still renews it
    assert decided.reason.code is ReasonCode.EXPIRING_LIFETIME_FRACTION
    ungated = renewal_time(info, None, window, None, None)
    assert window.start <= ungated.at <= window.end and ungated.ari_capped is None


def test_a_ca_that_keeps_asking_for_renewal_gets_at_most_five_orders_a_week() -> None:
    d = desired("a.example.com")
    now, info = T0, cert_info(not_before=T0)
    record = _record((T0, False))
    orders = 0
    for _ in range(3000):  # a loop would order every step
        observed = dataclasses.replace(observed_for(d, info), recorded={
            **secret_meta.build_secret_metadata(d, info, info.not_before).annotations,
            **record})
        action = plan([d], {d.secret: observed}, now, {d.secret: _renew_now(info)})[0]
        if action.kind is ActionKind.RENEW:
            orders += 1
            info = cert_info(not_before=now)
            record = {secret_meta.ISSUANCE_HISTORY: secret_meta.append_history(
                record[secret_meta.ISSUANCE_HISTORY], now, now, True)}
            now += timedelta(seconds=30)
        else:
            assert action.next_renewal is not None
            now = max(now + timedelta(seconds=30), action.next_renewal)
        if now >= T0 + 7 * DAY:
            break
    assert orders == ARI_RENEWALS_PER_WEEK


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[ObjectRef, str, str, str]] = []

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        self.posted.append((obj, type, reason, message))


def test_a_held_renewal_is_a_warning_event_and_a_metric() -> None:
    events = Events()
    d = desired("a.example.com")
    report_ari_held(events, d, "ARI renewal held back until ...")
    assert [(o, t, r) for o, t, r, _ in events.posted] == [(d.source, "Warning",
                                                            ARI_RENEWAL_HELD)]
    metrics = Metrics(process=False)
    metrics.count_ari_renewal_held(2)
    assert b"certbotk8s_ari_renewals_held_total 2.0" in metrics.render()
