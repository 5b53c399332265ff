"""The pure choice of in-flight order records no order will resume (core.state.inflight)."""

from __future__ import annotations

from certbotk8s.core.model import SecretRef
from certbotk8s.core.state.inflight import NamespaceState, StaleOrder, stale_orders

ACTIVE, TERMINATING, GONE = NamespaceState.ACTIVE, NamespaceState.TERMINATING, NamespaceState.GONE
A, B = ("a.example.com",), ("b.example.com",)


def ref(namespace: str, name: str = "web-tls") -> SecretRef:
    return SecretRef(namespace, name)


def test_an_entry_an_order_may_resume_is_kept() -> None:
    recorded = {ref("live"): A}
    assert stale_orders(recorded, {ref("live"): A}, {"live": ACTIVE}, busy=()) == []
    # Namespace state unknown (namespaced mode: no `get namespaces`): the sources decide.
    assert stale_orders(recorded, {ref("live"): A}, {}, busy=()) == []


def test_entries_of_gone_or_terminating_namespaces_go_even_while_still_desired() -> None:
    # Without a namespace controller a deleted namespace stays Terminating and keeps its
    # sources: the API server refuses any new Secret there, so the order can never end.
    recorded = {ref("gone"): A, ref("dying"): A}
    desired = {ref("gone"): A, ref("dying"): A}
    assert stale_orders(recorded, desired, {"gone": GONE, "dying": TERMINATING}, busy=()) == [
        StaleOrder(ref("dying"), "namespace dying is being deleted"),
        StaleOrder(ref("gone"), "namespace gone no longer exists")]


def test_entries_no_source_wants_or_for_other_hosts_go() -> None:
    recorded = {ref("live", "orphan-tls"): A, ref("live", "moved-tls"): A}
    desired = {ref("live", "moved-tls"): (*A, *B)}
    assert stale_orders(recorded, desired, {"live": ACTIVE}, busy=()) == [
        StaleOrder(ref("live", "moved-tls"),
                   "the hosts of Secret live/moved-tls changed since the order was placed"),
        StaleOrder(ref("live", "orphan-tls"), "no source asks for Secret live/orphan-tls any more"),
    ]


def test_a_busy_secret_keeps_its_entry_whatever_else_is_true() -> None:
    recorded = {ref("gone"): A, ref("live"): B}
    assert stale_orders(recorded, {}, {"gone": GONE, "live": ACTIVE},
                        busy={ref("gone"), ref("live")}) == []


def test_entries_outside_the_controllers_namespaces_are_not_its_to_judge() -> None:
    recorded = {ref("team-a"): A, ref("team-b"): A}
    stale = stale_orders(recorded, {}, {"team-a": GONE, "team-b": GONE}, busy=(),
                         scope=("team-a",))
    assert stale == [StaleOrder(ref("team-a"), "namespace team-a no longer exists")]
