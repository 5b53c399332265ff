"""Events per object are rate-limited (a burst, then a slow refill), each object on its own."""

from __future__ import annotations

from certbotk8s.adapters.kube_events import SpamFilter
from certbotk8s.core.model import ObjectRef

A = ObjectRef("networking.k8s.io/v1", "Ingress", "team-a", "flood")
B = ObjectRef("networking.k8s.io/v1", "Ingress", "team-b", "calm")


def test_burst_then_refill_per_object() -> None:
    now = [0.0]
    spam = SpamFilter(burst=3, refill=10.0, clock=lambda: now[0])
    assert [spam.allow(A) for _ in range(5)] == [True, True, True, False, False]
    assert spam.allow(B)  # another object is not affected by A's flood
    now[0] = 9.0
    assert not spam.allow(A)
    now[0] = 10.5
    assert spam.allow(A)
    assert not spam.allow(A)


def test_remembers_a_bounded_number_of_objects() -> None:
    spam = SpamFilter(burst=1, refill=1e9, clock=lambda: 0.0, remember=2)
    refs = [ObjectRef("v1", "Ingress", "ns", f"o{i}") for i in range(3)]
    assert all(spam.allow(r) for r in refs)
    assert spam.allow(refs[0])  # forgotten (the oldest), so it starts a fresh bucket
