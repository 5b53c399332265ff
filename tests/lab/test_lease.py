"""Leader election over a coordination.k8s.io Lease (adapters/kube/lease.py), lab apiserver."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.lease import LeaseElector
from certbotk8s.core.ports import LeaderElection

pytestmark = pytest.mark.lab

NS = "certbotk8s"
LEASE = 2.0
DEADLINE = 1.5
RETRY = 0.2

ElectorFactory = Callable[..., LeaseElector]


@pytest.fixture
def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_elector(controller_api: ApiClient, lease_name: str) -> Iterator[ElectorFactory]:
    made: list[LeaseElector] = []

    def make(identity: str, **kwargs: Any) -> LeaseElector:
        options: dict[str, Any] = {"lease_duration": LEASE, "renew_deadline": DEADLINE,
                                   "retry_period": RETRY, "name": lease_name, **kwargs}
        elector = LeaseElector(controller_api, options.pop("namespace", NS),
                               identity=identity, **options)
        made.append(elector)
        return elector

    yield make
    for elector in made:
        elector.stop(release=True)


def read_lease(api: ApiClient, name: str, namespace: str = NS) -> dict[str, Any]:
    coordination: Any = k8s.CoordinationV1Api(api)
    response = coordination.read_namespaced_lease(name, namespace, _preload_content=False)
    data: dict[str, Any] = json.loads(response.data)
    return data


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails the test after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_one_of_two_leads_and_the_lease_says_so(make_elector: ElectorFactory, admin_api: ApiClient,
                                                lease_name: str) -> None:
    started: list[str] = []
    a = make_elector("a", on_started_leading=lambda: started.append("a"))
    b = make_elector("b", on_started_leading=lambda: started.append("b"))
    elector: LeaderElection = a  # satisfies the core's Protocol
    a.start()
    b.start()
    wait_until(lambda: a.is_leader() or b.is_leader(), timeout=5)
    time.sleep(4 * RETRY)  # several renew rounds: still exactly one leader
    assert [a.is_leader(), b.is_leader()].count(True) == 1
    leader = "a" if elector.is_leader() else "b"
    assert started == [leader]
    spec = read_lease(admin_api, lease_name)["spec"]
    assert spec["holderIdentity"] == leader
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] and spec["renewTime"]


def test_release_hands_over_at_once(make_elector: ElectorFactory, admin_api: ApiClient,
                                    lease_name: str) -> None:
    stopped = threading.Event()
    a = make_elector("a", on_stopped_leading=stopped.set)
    a.start()
    assert a.wait_for_leadership(5)
    b = make_elector("b")
    b.start()
    time.sleep(3 * RETRY)
    assert not b.is_leader()

    a.stop(release=True)
    assert not a.is_leader()
    assert stopped.is_set()
    handover = wait_until(b.is_leader, timeout=LEASE)
    assert handover < 3 * RETRY + 0.5  # at b's next poll, not after the lease duration
    spec = read_lease(admin_api, lease_name)["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_frozen_leader_is_replaced_after_the_lease_expires(make_elector: ElectorFactory) -> None:
    a = make_elector("a")
    a.start()
    assert a.wait_for_leadership(5)
    b = make_elector("b")
    b.start()
    time.sleep(3 * RETRY)

    a.stop(release=False)  # like SIGKILL: the Lease still names a
    frozen = time.monotonic()
    assert b.wait_for_leadership(LEASE + 2)
    waited = time.monotonic() - frozen
    assert LEASE - 2 * RETRY <= waited <= LEASE + 1.0
    assert a.takeover() == "created the Lease (no leader before)"
    # What the new leader's LeaderElection Event says.
    assert b.takeover() == "took over from a, whose Lease was not renewed for 2s"


def test_leader_that_loses_the_lease_stops_within_the_deadline(
        make_elector: ElectorFactory, admin_api: ApiClient, lease_name: str) -> None:
    stopped = threading.Event()
    a = make_elector("a", on_stopped_leading=stopped.set)
    a.start()
    assert a.wait_for_leadership(5)

    lease = read_lease(admin_api, lease_name)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease["spec"].update(holderIdentity="intruder", renewTime=now, acquireTime=now,
                         leaseDurationSeconds=30)
    coordination: Any = k8s.CoordinationV1Api(admin_api)
    for _ in range(10):  # a renews meanwhile: retry on a lost resourceVersion race
        try:
            coordination.replace_namespaced_lease(lease_name, NS, lease)
            break
        except ApiException as e:
            if e.status != 409:
                raise
            lease = {**read_lease(admin_api, lease_name), "spec": lease["spec"]}
    taken = time.monotonic()
    wait_until(lambda: not a.is_leader(), timeout=DEADLINE)
    assert time.monotonic() - taken < DEADLINE
    assert stopped.wait(1)
    time.sleep(3 * RETRY)
    assert not a.is_leader()  # the intruder's lease is valid: a does not take it back
    assert read_lease(admin_api, lease_name)["spec"]["holderIdentity"] == "intruder"


class _Failing:
    """Stands in for the elector's KubeRest: every call fails like an unreachable server."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ApiException(status=503, reason="Service Unavailable")
        return fail


class _Contacts:
    """Records what the elector reports of its contact with the API server."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def reached(self, resource: str) -> None:
        if not self.seen or self.seen[-1][0] != "reached":
            self.seen.append(("reached", resource))

    def failed(self, resource: str, cause: str) -> None:
        self.seen.append(("failed", cause))

    def expired(self, resource: str) -> None:
        self.seen.append(("expired", resource))


def test_leader_that_cannot_renew_stops_before_the_lease_expires(
        make_elector: ElectorFactory, lease_name: str) -> None:
    contacts, stopped = _Contacts(), threading.Event()
    a = make_elector("a", health=contacts, on_stopped_leading=stopped.set)
    a.start()
    assert a.wait_for_leadership(5)
    working = a._rest
    a._rest = _Failing()  # type: ignore[assignment]
    cut = time.monotonic()
    wait_until(lambda: not a.is_leader(), timeout=DEADLINE + 0.5)
    assert time.monotonic() - cut <= DEADLINE + 0.1
    assert a._thread is not None and a._thread.is_alive()  # errors never kill the thread
    assert stopped.wait(2)
    a._rest = working
    assert a.wait_for_leadership(5)  # the Lease still names a: it renews again
    assert a.takeover() == "the Lease still named this replica (no one took it meanwhile)"
    # The failed renewals were reported with their cause, then the contact again.
    assert contacts.seen[0] == ("reached", f"lease {NS}/{lease_name}")
    failed = {cause for what, cause in contacts.seen if what == "failed"}
    assert failed == {f"get leases {NS}/{lease_name} failed: HTTP 503: Service Unavailable"}
    assert contacts.seen[-1][0] == "reached"


def test_api_errors_are_retried_not_fatal(make_elector: ElectorFactory, namespace: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # The controller identity may not touch Leases outside its own namespace: 403 each round.
    a = make_elector("a", namespace=namespace)
    with caplog.at_level("WARNING", logger="certbotk8s.adapters.kube.lease"):
        a.start()
        assert not a.wait_for_leadership(4 * RETRY)
    assert a._thread is not None and a._thread.is_alive()
    forbidden = [r for r in caplog.records if "forbidden" in r.getMessage()]
    assert len(forbidden) >= 2  # logged and tried again


def test_rejects_inconsistent_timing(controller_api: ApiClient) -> None:
    with pytest.raises(ValueError):
        LeaseElector(controller_api, NS, identity="a", lease_duration=2, renew_deadline=3)


def test_a_leader_whose_renewal_came_late_is_told_it_leads_again(
        make_elector: ElectorFactory) -> None:
    # A slow API server (just restarted, two busy cores) can answer a renewal after the renew
    # deadline: is_leader() is False meanwhile and orders are left, yet the Lease is never
    # lost, so no started/stopped callback would ever start them again.
    offset = [0.0]
    calls: list[str] = []
    resumed = threading.Event()
    a = make_elector("a", clock=lambda: time.monotonic() + offset[0],
                     on_started_leading=lambda: calls.append("started"),
                     on_stopped_leading=lambda: calls.append("stopped"),
                     on_resumed_leading=resumed.set)
    a.start()
    assert a.wait_for_leadership(5)
    offset[0] += DEADLINE  # the last renewal now lies a whole renew deadline back
    assert resumed.wait(5), "the lapse ended without on_resumed_leading"
    assert a.is_leader()
    assert calls == ["started"]  # the Lease was never lost
