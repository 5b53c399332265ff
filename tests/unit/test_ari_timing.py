"""ARI per RFC 9773: the CA's Retry-After (clamped to [1 min, 12 h]) sets the next read, its
explanationURL is logged and shown, and expired certificates are not asked
(core/renewal/ari_timing.py, app/ari.py, app/controller/ari_refresh.py, the pass's ARI reads)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from certbotk8s.app.ari import AriReader
from certbotk8s.app.controller.ari_refresh import AriRefresher
from certbotk8s.app.controller.cert_state import StateTable
from certbotk8s.app.orders import read_windows
from certbotk8s.core.model import CertificateInfo, RenewalWindow
from certbotk8s.core.renewal.ari_timing import AriReading, next_read_in, worth_reading
from certbotk8s.core.state import ari_memory, secret_meta
from tests.unit.factories import cert_info, desired, make_config, observed_for

HOUR = timedelta(hours=1)


def test_retry_after_is_clamped_to_one_minute_and_twelve_hours() -> None:
    info = cert_info(lifetime=timedelta(days=90))
    assert next_read_in(info, 5) == timedelta(minutes=1)
    assert next_read_in(info, 6 * 3600) == 6 * HOUR
    assert next_read_in(info, 10 * 86400) == 12 * HOUR
    # Without one: 12 h, or 1/10 of a short lifetime.
    assert next_read_in(info, None) == 12 * HOUR
    assert next_read_in(cert_info(lifetime=timedelta(days=4)), None) == timedelta(hours=9.6)
    assert next_read_in(cert_info(lifetime=timedelta(hours=1)), None) == timedelta(minutes=6)
    # the CA's Retry-After never outlasts 1/10 of a short-lived certificate's life
    four_minutes = cert_info(lifetime=timedelta(minutes=4))
    assert next_read_in(four_minutes, 6 * 3600) == timedelta(seconds=24)
    six_days = cert_info(lifetime=timedelta(days=6))
    assert next_read_in(six_days, 6 * 3600) == 6 * HOUR


def test_expired_certificates_are_not_asked() -> None:
    info = cert_info()
    assert worth_reading(info, info.not_after - timedelta(seconds=1))
    assert not worth_reading(info, info.not_after)


class Engine:
    def __init__(self, reading: AriReading) -> None:
        self.reading = reading
        self.asked: list[str] = []

    def ari_reading(self, cert_id: str) -> AriReading:
        self.asked.append(cert_id)
        return self.reading


class Issuers:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def engine(self, issuer: str) -> Engine:
        return self._engine


def _window(info: CertificateInfo) -> RenewalWindow:
    return RenewalWindow(info.not_before + timedelta(days=1), info.not_before + timedelta(days=2),
                         info.ari_cert_id)


def test_the_reader_carries_retry_after_and_logs_the_explanation_once(
        caplog: pytest.LogCaptureFixture) -> None:
    info = cert_info()
    engine = Engine(AriReading(_window(info), 21600.0, "https://ca.example/incident"))
    reader = AriReader(cast(Any, Issuers(engine)))
    with caplog.at_level(logging.WARNING):
        answer = reader.read("le", info.ari_cert_id)
        reader.read("le", info.ari_cert_id)
    assert (answer.retry_after, answer.explanation_url) == (21600.0,
                                                           "https://ca.example/incident")
    assert [r.getMessage() for r in caplog.records].count(
        f"ARI for certificate {info.ari_cert_id}: the CA explains its window at "
        "https://ca.example/incident") == 1


def test_the_pass_skips_expired_certificates_and_shows_the_explanation() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    fresh, old = desired("a.example.com"), desired("b.example.com")
    old = dataclasses.replace(old, secret=dataclasses.replace(old.secret, name="old-tls"))
    live = cert_info("a.example.com", not_before=now - timedelta(days=10))
    expired = cert_info("b.example.com", not_before=now - timedelta(days=100))
    engine = Engine(AriReading(_window(live), None, "https://ca.example/why"))
    reader = AriReader(cast(Any, Issuers(engine)))
    readings = read_windows(reader, [fresh, old], {
        fresh.secret: observed_for(fresh, live), old.secret: observed_for(old, expired)}, now)
    assert engine.asked == [live.ari_cert_id]  # the expired one is not asked
    assert set(readings.windows) == {fresh.secret}
    assert readings.problems == {
        fresh.secret: "the CA explains its ARI window at https://ca.example/why"}


def test_a_run_asks_the_ca_again_only_after_its_retry_after() -> None:
    """renew --once remembers each window with the CA's Retry-After (clamped): the next run
    within it uses the record, the first run after it asks again."""
    now = datetime(2025, 6, 1, tzinfo=UTC)
    d = desired("a.example.com")
    live = cert_info("a.example.com", not_before=now - timedelta(days=10))
    engine = Engine(AriReading(_window(live), 6 * 3600.0))
    reader = AriReader(cast(Any, Issuers(engine)))
    first = read_windows(reader, [d], {d.secret: observed_for(d, live)}, now)
    memory = first.memory[d.secret]
    assert engine.asked == [live.ari_cert_id]
    assert memory[ari_memory.ARI_NEXT_READ] == secret_meta.format_time(now + timedelta(hours=6))
    remembered = dataclasses.replace(observed_for(d, live), recorded=dict(
        (k, v) for k, v in memory.items() if v is not None))
    later = read_windows(reader, [d], {d.secret: remembered}, now + timedelta(hours=5))
    assert engine.asked == [live.ari_cert_id]  # not asked again inside Retry-After
    assert later.windows[d.secret] == first.windows[d.secret] and not later.memory
    after = read_windows(reader, [d], {d.secret: remembered}, now + timedelta(hours=6))
    assert engine.asked == [live.ari_cert_id] * 2
    assert d.secret in after.memory


def test_a_remembered_window_is_only_for_its_own_certificate_and_bounded() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    live = cert_info("a.example.com", not_before=now - timedelta(days=10))
    window = _window(live)
    record = {k: v for k, v in ari_memory.to_remember(live, window, 3600.0, now).items()
              if v is not None}
    assert ari_memory.remembered(record, live, now + timedelta(minutes=59)) == window
    other = dataclasses.replace(live, ari_cert_id="other.cert-id")
    assert ari_memory.remembered(record, other, now) is None  # a new certificate: ask
    far = dict(record, **{ari_memory.ARI_NEXT_READ: secret_meta.format_time(
        now + timedelta(days=30))})
    assert ari_memory.remembered(far, live, now) is None  # beyond any Retry-After we allow
    broken = dict(record, **{ari_memory.ARI_START: "not a time"})
    assert ari_memory.remembered(broken, live, now) is None


class Watch:
    def __init__(self, observed: Any) -> None:
        self._observed = observed
        self.wake = threading.Event()

    def managed(self) -> list[tuple[tuple[str, str], Any]]:
        ref = self._observed.ref
        return [((ref.namespace, ref.name), self._observed)]


def _refresher(info: CertificateInfo, retry_after: float | None,
               ) -> tuple[AriRefresher, Engine, StateTable]:
    d = desired("a.example.com")
    engine = Engine(AriReading(_window(info), retry_after))
    deps = cast(Any, type("Deps", (), {"issuers": Issuers(engine), "config": make_config()}))
    states = StateTable()
    states.track(d.secret)
    refresher = AriRefresher(deps, cast(Any, Watch(observed_for(d, info))), states,
                             threading.Event())
    return refresher, engine, states


@pytest.mark.parametrize(("retry_after", "wait"), [(5.0, 60.0), (21600.0, 21600.0),
                                                  (1e7, 43200.0), (None, 43200.0)])
def test_the_refresher_reads_again_after_the_clamped_retry_after(
        retry_after: float | None, wait: float) -> None:
    now = datetime.now(UTC)
    info = cert_info(not_before=now - timedelta(days=10))
    refresher, engine, states = _refresher(info, retry_after)
    refresher.refresh()
    refresher.refresh()  # too soon: not asked again
    assert len(engine.asked) == 1
    state = next(s for _, s in states.items())
    assert state.ari.next_read - state.ari.fetched == pytest.approx(wait)
    ref = next(ref for ref, _ in states.items())
    # its time has come
    states.set_ari(ref, dataclasses.replace(state.ari, next_read=state.ari.fetched))
    refresher.refresh()
    assert len(engine.asked) == 2


def test_the_refresher_does_not_ask_about_an_expired_certificate() -> None:
    info = cert_info(not_before=datetime.now(UTC) - timedelta(days=91))
    refresher, engine, _ = _refresher(info, None)
    refresher.refresh()
    assert engine.asked == []
