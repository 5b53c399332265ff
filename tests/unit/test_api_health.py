"""ApiHealth: an outage runs from the first failed watch until every failed one is back."""

from __future__ import annotations

from collections.abc import Callable

from certbotk8s.app.health.api_health import DIAGNOSE_EVERY, ApiHealth, ApiOutage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_outage_lasts_until_every_failed_watch_is_back_and_is_reported_once() -> None:
    clock, outages, changes = Clock(), list[ApiOutage](), list[bool]()
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
                                 "(failing: ingresses, secrets)")
    health.reached("secrets")
    assert not health.reachable() and outages == []  # ingresses still failing
    health.reached("ingresses")
    health.reached("ingresses")  # a second contact is no second outage
    assert health.reachable() and health.unreachable_seconds() == 0
    assert [(o.seconds, o.cause) for o in outages] == [(7, "connection reset")]
    assert changes == [False, True]


def test_a_watch_that_never_failed_ends_no_outage() -> None:
    outages = list[ApiOutage]()
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


def _now(work: Callable[[], None]) -> None:
    work()  # the diagnosis runs on the caller's thread in these tests


def test_a_timeout_asks_the_api_server_why_and_shows_its_answer_until_the_outage_ends() -> None:
    clock, outages, asked = Clock(), list[ApiOutage](), list[int]()

    def diagnose() -> str | None:
        asked.append(1)
        return "the API server cannot reach its storage (readyz: etcd failed)"

    health = ApiHealth(on_back=outages.append, clock=clock, diagnose=diagnose, background=_now)
    health.failed("lease certbotk8s/certbotk8s", "timed out (no answer)")
    assert health.cause() == ("the API server cannot reach its storage (readyz: etcd failed) "
                              "(timed out (no answer))")
    assert "etcd failed" in health.describe()
    clock.now += DIAGNOSE_EVERY - 1
    health.failed("lease certbotk8s/certbotk8s", "timed out (no answer)")
    assert len(asked) == 1  # asked at most every DIAGNOSE_EVERY seconds
    clock.now += 1
    health.failed("lease certbotk8s/certbotk8s", "HTTP 504 Timeout")
    assert len(asked) == 2
    health.reached("lease certbotk8s/certbotk8s")
    assert "etcd failed" in outages[0].cause and health.cause() == ""
    health.failed("secrets", "timed out (no answer)")  # a new outage asks again at once
    assert len(asked) == 3


def test_a_refused_connection_or_a_server_that_cannot_tell_keeps_the_plain_cause() -> None:
    asked = list[int]()

    def diagnose() -> str | None:
        asked.append(1)
        return None  # e.g. /readyz forbidden, or ready after all

    health = ApiHealth(diagnose=diagnose, background=_now)
    health.failed("secrets", "connection refused")
    assert asked == [] and health.cause() == "connection refused"  # nothing to ask
    health.failed("lease x/y", "timed out (no answer)")
    assert asked == [1] and health.cause() == "timed out (no answer)"


def test_a_diagnosis_that_raises_leaves_the_tracking_intact() -> None:
    def diagnose() -> str | None:
        raise RuntimeError("boom")

    health = ApiHealth(diagnose=diagnose, background=_now)
    health.failed("lease x/y", "HTTP 500 etcdserver: request timed out")
    assert not health.reachable()
    assert health.cause() == "HTTP 500 etcdserver: request timed out"
