"""Retry now, in both modes over the in-memory world: a changed source spec ends a backoff (the
controller and `renew --once`), and `renew NAMESPACE/SECRET` orders a Secret never issued
however long its backoff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from certbotk8s.app.commands import force
from certbotk8s.app.oneshot import run as oneshot_run
from certbotk8s.app.oneshot.pass_outages import PassOutages
from certbotk8s.app.oneshot.run import run_pass
from certbotk8s.core.errors import ChallengeFailed, Problem
from certbotk8s.core.model import SecretRef
from certbotk8s.core.sources.annotations import KEY_TYPE
from certbotk8s.core.state import secret_meta

from . import hostile
from .cluster import FakeController, World
from .factories import ingress, make_config, tls_entry

START = datetime(2025, 3, 1, tzinfo=UTC)
HOST = "shop.example.com"
REF = SecretRef("team-a", "shop-tls")


@pytest.fixture(autouse=True)
def _no_ca_probe() -> Iterator[None]:
    """`renew --once` probes each CA's directory first: the fake CA has none to probe."""
    def outages(config: Any, solvers: Any) -> PassOutages:
        return PassOutages(config, solvers, probe=hostile.no_probe)

    with mock.patch.object(oneshot_run, "PassOutages", outages):
        yield


def _failing_world(failures: int) -> tuple[World, FakeController]:
    """A first issuance failed `failures` times: the backoff is at its daily step."""
    world = World(make_config(), START)
    world.cluster.add_ingress(ingress("shop", "team-a", tls=[tls_entry("shop-tls", HOST)]),
                              START)
    world.acme.fail(HOST, ChallengeFailed(HOST, "http-01", Problem("urn:x:unauthorized")))
    controller = FakeController(world)
    for _ in range(failures):
        controller.settle()
        next_attempt = secret_meta.parse_time(controller.records.get(REF)[secret_meta.NEXT_ATTEMPT])
        assert next_attempt is not None
        world.clock.now = next_attempt + timedelta(seconds=1)
    controller.settle()
    assert len(world.acme.orders) == failures + 1
    world.acme.heal()
    world.clock.advance(timedelta(minutes=1))
    return world, controller


def _edit_source(world: World) -> None:
    """The tenant fixes its Ingress (here: another key type) - a new desired certificate."""
    world.cluster.add_ingress(
        ingress("shop", "team-a", tls=[tls_entry("shop-tls", HOST)],
                annotations={"certbotk8s.io/enabled": "true", KEY_TYPE: "ecdsa-p384"}),
        START)


def test_the_controller_orders_at_once_when_the_source_changes() -> None:
    world, controller = _failing_world(4)
    controller.settle()
    assert len(world.acme.orders) == 5  # still backing off (a day)
    _edit_source(world)
    controller.settle()
    assert len(world.acme.orders) == 6 and world.cluster.serial(REF) is not None
    assert secret_meta.FAILURES not in controller.records.get(REF)


def test_renew_once_orders_at_once_when_the_source_changes() -> None:
    world, controller = _failing_world(4)
    report = run_pass(controller.deps, ["team-a"])
    assert len(world.acme.orders) == 5 and report.failed  # backing off
    assert "backing off after 5 failed attempts" in report.outcomes[0].message
    _edit_source(world)
    report = run_pass(controller.deps, ["team-a"])
    assert not report.failed and world.cluster.serial(REF) is not None


def test_a_requested_renewal_of_a_secret_never_issued_is_ordered_despite_the_backoff() -> None:
    world, controller = _failing_world(4)
    asked = world.clock()
    report = run_pass(controller.deps, ["team-a"], only=[REF], requested=asked)
    assert [o.ok for o in report.outcomes] == [True]
    assert len(world.acme.orders) == 6 and world.cluster.serial(REF) is not None


def test_a_requested_attempt_that_fails_again_backs_off_again() -> None:
    world, controller = _failing_world(2)  # 3 failures
    world.acme.fail(HOST, ChallengeFailed(HOST, "http-01", Problem("urn:x:unauthorized")))
    asked = world.clock()
    world.clock.advance(timedelta(seconds=1))
    first = run_pass(controller.deps, ["team-a"], only=[REF], requested=asked)
    assert len(world.acme.orders) == 4 and first.failed
    assert controller.records.get(REF)[secret_meta.FAILURES] == "4"  # the count went on
    again = run_pass(controller.deps, ["team-a"], only=[REF], requested=asked)
    assert len(world.acme.orders) == 4  # that request was answered; the backoff holds again
    assert "backing off" in again.outcomes[0].message


def test_the_controller_answers_a_renewal_request_during_a_backoff_once() -> None:
    world, controller = _failing_world(0)
    controller.settle()
    assert world.cluster.serial(REF) is not None  # issued at the second try (healed)
    world.acme.fail(HOST, ChallengeFailed(HOST, "http-01", Problem("urn:x:unauthorized")))
    orders = len(world.acme.orders)
    for _ in range(2):  # each request: one attempt at once, then the backoff holds again
        world.clock.advance(timedelta(seconds=5))
        force.request_renewal(world.cluster, REF, world.clock())
        world.clock.advance(timedelta(seconds=1))
        controller.settle()
        orders += 1
        assert len(world.acme.orders) == orders
        controller.settle()
        assert len(world.acme.orders) == orders
    assert controller.records.get(REF)[secret_meta.FAILURES] == "2"
