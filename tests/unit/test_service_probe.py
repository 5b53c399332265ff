"""CA health gate: one probe per down issuer; Retry-After holds unless a certificate is due."""

from __future__ import annotations

import threading

from certbotk8s.app.health.service_probe import ServiceProbe
from certbotk8s.core.errors import AcmeCaUnavailable


class FakeCa:
    def __init__(self, down_for: int) -> None:
        self.down_for = down_for  # probes that fail before the CA answers
        self.probes = 0
        self.back = threading.Event()
        self.states: list[tuple[str, bool]] = []

    def probe(self, issuer: str) -> str | None:
        self.probes += 1
        return "cannot reach the CA: connection refused" if self.probes <= self.down_for else None


def _health(ca: FakeCa) -> ServiceProbe:
    return ServiceProbe(ca.probe, lambda issuer: ca.back.set(),
                    on_state=lambda issuer, up: ca.states.append((issuer, up)),
                    first_delay=0.001, max_delay=0.004)


def test_many_failures_start_one_probe_and_the_first_success_reopens() -> None:
    ca = FakeCa(down_for=3)
    health = _health(ca)
    for _ in range(20):  # twenty orders found the CA down
        health.report("pebble", AcmeCaUnavailable("cannot reach the CA: connection refused"))
    assert health.down("pebble") is not None and "connection refused" in str(health.down("pebble"))
    assert health.down("other") is None
    assert ca.back.wait(5)
    assert ca.probes == 4  # three failed probes, one success: not one per order
    assert health.down("pebble") is None
    assert ca.states == [("pebble", False), ("pebble", True)]


def test_retry_after_hours_away_is_capped_by_what_a_certificate_needs() -> None:
    ca = FakeCa(down_for=0)
    health = _health(ca)
    health.report("pebble", AcmeCaUnavailable("503", retry_after_seconds=3 * 3600))
    assert not ca.back.wait(0.05)  # Retry-After is honoured ...
    assert ca.probes == 0
    health.need_by("pebble", 0.0)  # ... until a certificate cannot wait any longer
    assert ca.back.wait(5)
    assert ca.probes == 1


def test_stop_ends_the_probe() -> None:
    ca = FakeCa(down_for=10**9)
    health = _health(ca)
    health.report("pebble", AcmeCaUnavailable("down", retry_after_seconds=3600))
    health.stop()
    assert not ca.back.wait(0.05)
    assert health.down("pebble") is not None
