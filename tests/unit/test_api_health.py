"""ApiHealth: an outage runs from the first failed watch until every failed one is back."""

from __future__ import annotations

from certbotk8s.app.api_health import ApiHealth, Outage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outage_lasts_until_every_failed_watch_is_back_and_is_reported_once() -> None:
    clock, outages, changes = Clock(), list[Outage](), list[bool]()
    health = ApiHealth(on_back=outages.append, clock=clock, on_change=changes.append)
    assert health.reachable() and health.unreachable_seconds() == 0
    assert health.describe() == "API server: reachable"
    health.failed("secrets", "connection refused")
    clock.now += 3
    health.failed("ingresses", "connection reset")
    clock.now += 4
    assert not health.reachable()
    assert health.unreachable_seconds() == 7
    assert health.describe() == ("API server: unreachable for 7s: connection reset "
                                 "(2 watches failing)")
    health.reached("secrets")
    assert not health.reachable() and outages == []  # ingresses still failing
    health.reached("ingresses")
    health.reached("ingresses")  # a second contact is no second outage
    assert health.reachable() and health.unreachable_seconds() == 0
    assert [(o.seconds, o.cause) for o in outages] == [(7, "connection reset")]
    assert changes == [False, True]


def test_a_watch_that_never_failed_ends_no_outage() -> None:
    outages = list[Outage]()
    health = ApiHealth(on_back=outages.append)
    health.reached("secrets")
    assert outages == [] and health.reachable()


def test_expired_watches_are_counted_per_resource_not_per_namespace() -> None:
    expired = list[str]()
    health = ApiHealth(on_expired=expired.append)
    health.expired("secrets (certbotk8s-managed)@team-a")
    health.expired("ingresses.networking.k8s.io")
    assert expired == ["secrets (certbotk8s-managed)", "ingresses.networking.k8s.io"]
    assert health.reachable()  # a 410 is an answer: the API server is there
