"""The one renewal decision (core/renewal/moment.py), its persisted moment, and backoff steps."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from certbotk8s.core.model import RenewalWindow
from certbotk8s.core.renewal.backoff import STEPS, FailureState, after_failure, capped_on_read
from certbotk8s.core.renewal.moment import ChosenMoment, floor_time, renewal_time
from certbotk8s.core.renewal.reasons import ReasonCode
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, cert_info

DAY = timedelta(days=1)
INFO = cert_info()  # 90 days from T0, CertID "aki.serial"
ID = INFO.ari_cert_id


def window(start_day: float, end_day: float, cert_id: str = ID) -> RenewalWindow:
    return RenewalWindow(T0 + start_day * DAY, T0 + end_day * DAY, cert_id)


def test_fallback_is_the_lifetime_fraction() -> None:
    decided = renewal_time(INFO, None, None, None)
    assert (decided.at, decided.reason.code) == (T0 + 60 * DAY,
                                                 ReasonCode.EXPIRING_LIFETIME_FRACTION)
    short = cert_info(lifetime=6 * DAY)
    assert renewal_time(short, None, None, None).at == T0 + 3 * DAY
    assert decided.floor == T0 + 81 * DAY


def test_ari_moment_is_inside_the_window_stable_and_reported() -> None:
    w = window(60, 62)
    decided = renewal_time(INFO, None, w, None)
    assert decided.reason.code is ReasonCode.INSIDE_ARI_WINDOW
    assert w.start <= decided.at <= w.end and decided.at.microsecond == 0
    assert decided.moment == ChosenMoment(decided.at, ID, w)
    assert renewal_time(INFO, None, w, None).at == decided.at  # any replica, any restart


def test_a_persisted_moment_is_kept_and_a_moved_window_picks_again() -> None:
    w = window(60, 62)
    persisted = ChosenMoment(w.end - timedelta(hours=1), ID, w)
    assert renewal_time(INFO, None, w, persisted).at == persisted.at
    moved = window(40, 41)
    again = renewal_time(INFO, None, moved, persisted)
    assert moved.start <= again.at <= moved.end and again.moment is not None
    assert again.moment.window == moved


def test_a_persisted_moment_stands_when_the_ca_gives_no_window() -> None:
    w = window(60, 62)
    persisted = ChosenMoment(T0 + 61 * DAY, ID, w)
    assert renewal_time(INFO, None, None, persisted).at == persisted.at
    other = ChosenMoment(T0 + 61 * DAY, "old.cert", window(60, 62, "old.cert"))
    assert renewal_time(INFO, None, None, other).at == T0 + 60 * DAY  # not this certificate's


def test_a_window_of_another_certificate_is_never_used() -> None:
    # After a renewal the old certificate's window must not make the new one "due".
    decided = renewal_time(INFO, None, window(0, 1, "old.cert"), None)
    assert decided.at == T0 + 60 * DAY and decided.moment is None
    assert decided.ignored_window is not None and "old.cert" in decided.ignored_window


def test_a_window_outside_the_validity_is_ignored() -> None:
    for w in (window(80, 91), window(5, 4)):
        decided = renewal_time(INFO, None, w, None)
        assert decided.at == T0 + 60 * DAY and decided.ignored_window is not None


def test_a_renew_now_window_before_not_before_is_clamped_not_dropped() -> None:
    # A revoked certificate minutes old: the CA's "renew now" window began before it existed.
    decided = renewal_time(INFO, None, window(-1, 2), None)
    assert decided.ignored_window is None and decided.moment is not None
    assert decided.moment.window == window(0, 2) and T0 <= decided.at <= T0 + 2 * DAY
    assert decided.reason.code is ReasonCode.INSIDE_ARI_WINDOW
    # Entirely before notBefore: renew at notBefore (now).
    short = cert_info(lifetime=timedelta(minutes=30))
    ended = renewal_time(short, None, RenewalWindow(T0 - DAY, T0 - DAY / 2, ID), None)
    assert ended.ignored_window is None and T0 <= ended.at <= T0 + timedelta(seconds=1)
    # Another certificate's window stays ignored, clamped or not.
    assert renewal_time(INFO, None, window(-1, 2, "old.cert"), None).moment is None


def test_a_persisted_moment_outside_its_own_window_is_not_used() -> None:
    w = window(50, 52)
    stray = ChosenMoment(T0 + 10 * DAY, ID, w)  # a moment its window never held
    assert renewal_time(INFO, None, None, stray).at == T0 + 60 * DAY
    kept = ChosenMoment(T0 + 51 * DAY, ID, w)
    assert renewal_time(INFO, None, None, kept).at == T0 + 51 * DAY


def test_a_stored_next_attempt_is_capped_when_read() -> None:
    not_after = T0 + 90 * DAY
    now = not_after - 10 * 3600 * timedelta(seconds=1)  # 10 h left on this clock
    # Written by a pod whose clock was already past expiry: a day's step, uncapped.
    ahead = not_after + timedelta(minutes=5)
    written = after_failure(FailureState(3), ahead, "boom", 1.0, not_after)
    assert written.next_attempt == ahead + DAY
    read = capped_on_read(written, now, not_after, ahead)
    assert read.next_attempt == now + timedelta(hours=1)  # 1/10 of the 10 h left
    # A failure recorded earlier on this clock keeps its own cap (fixed, not moving with now).
    earlier = now - timedelta(hours=2)
    stored = FailureState(4, earlier + DAY, "boom")
    assert capped_on_read(stored, now, not_after, earlier).next_attempt == earlier + \
        timedelta(hours=1.2)
    # Nothing to cap: no certificate, no next attempt, or a short wait.
    assert capped_on_read(stored, now, None, earlier) == stored
    assert capped_on_read(FailureState(), now, not_after, earlier) == FailureState()
    soon = FailureState(1, now + timedelta(minutes=1), "boom")
    assert capped_on_read(soon, now, not_after, now) == soon


def test_floor_overrides_a_late_window() -> None:
    decided = renewal_time(INFO, None, window(85, 89), None)
    assert (decided.at, decided.reason.code) == (T0 + 81 * DAY, ReasonCode.LIFETIME_FLOOR)


def test_renew_before_moves_earlier_never_later_and_not_into_a_loop() -> None:
    assert renewal_time(INFO, 45 * DAY, None, None).at == T0 + 45 * DAY
    assert renewal_time(INFO, 5 * DAY, None, None).at == T0 + 60 * DAY
    assert renewal_time(INFO, 100 * DAY, None, None).at == T0 + 60 * DAY  # >= lifetime: ignored
    # close to the lifetime: never before 1/10 of it has elapsed
    decided = renewal_time(INFO, 89 * DAY, None, None)
    assert (decided.at, decided.reason.code) == (T0 + 9 * DAY, ReasonCode.INSIDE_RENEW_BEFORE)


def test_moments_spread_across_the_window() -> None:
    w = window(60, 62)
    fractions = []
    for serial in range(400):
        info = cert_info()
        cert_id = f"aki.{serial:x}"
        info = type(info)(info.sans, info.not_before, info.not_after, f"{serial:x}",
                          info.key_type, cert_id)
        at = renewal_time(info, None, RenewalWindow(w.start, w.end, cert_id), None).at
        fractions.append((at - w.start) / (w.end - w.start))
    quarters = [sum(1 for f in fractions if q / 4 <= f < (q + 1) / 4) for q in range(4)]
    assert all(60 < n < 140 for n in quarters), quarters  # uniform: about 100 each


@given(lifetime_s=st.integers(60, 400 * 86400), start=st.floats(0, 1), width=st.floats(0, 1),
       renew_before_s=st.none() | st.integers(1, 400 * 86400))
def test_never_after_the_floor_never_before_not_before(
        lifetime_s: int, start: float, width: float, renew_before_s: int | None) -> None:
    info = cert_info(lifetime=timedelta(seconds=lifetime_s))
    life = info.lifetime
    w = RenewalWindow(T0 + life * start, T0 + life * min(1.0, start + width), ID)
    rb = timedelta(seconds=renew_before_s) if renew_before_s is not None else None
    decided = renewal_time(info, rb, w, None)
    assert info.not_before <= decided.at <= floor_time(info)


def test_moment_annotation_round_trip_and_garbage() -> None:
    moment = ChosenMoment(T0 + 61 * DAY, ID, window(60, 62))
    annotations = {secret_meta.RENEWAL_MOMENT: secret_meta.format_moment(moment)}
    assert secret_meta.parse_moment(annotations) == moment
    for bad in ("", "x", "2025-01-01T00:00:00Z id", "nonsense id 2025 2026"):
        assert secret_meta.parse_moment({secret_meta.RENEWAL_MOMENT: bad}) is None


def test_backoff_steps_jitter_and_cap_by_remaining_life() -> None:
    state = FailureState()
    for step in (*STEPS, STEPS[-1]):
        state = after_failure(state, T0, "boom", 1.0, None)
        assert state.next_attempt == T0 + step
        assert state.waiting(T0) and not state.waiting(T0 + step)
    assert state.failures == 5 and state.last_error == "boom"
    jittered = after_failure(FailureState(), T0, "x", 1.1, None)
    assert jittered.next_attempt == T0 + STEPS[0] * 1.1
    # 2 days left: the daily step is cut to 1/10 of that
    late = after_failure(FailureState(3), T0, "x", 1.0, T0 + 2 * DAY)
    assert late.next_attempt == T0 + 2 * DAY / 10
    # seconds left: at least 5 s, never a hot loop
    assert after_failure(FailureState(), T0, "x", 1.0,
                         T0 + timedelta(seconds=10)).next_attempt == T0 + timedelta(seconds=5)


def test_failure_annotations_round_trip() -> None:
    state = after_failure(FailureState(1), T0, "challenge failed", 1.0, None)
    annotations = secret_meta.failure_annotations(state, T0)
    assert secret_meta.parse_failures(annotations) == state
    assert secret_meta.parse_failures({secret_meta.FAILURES: "lots"}) == FailureState()
