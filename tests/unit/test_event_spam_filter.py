"""Events per object are rate-limited (a burst, then a slow refill), each object on its own."""

from __future__ import annotations

from certbotk8s.adapters.kube.events import SpamFilter
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


def test_remembers_a_bounded_number_of_objects_without_handing_out_fresh_bursts() -> None:
    now = [0.0]
    spam = SpamFilter(burst=2, refill=100.0, clock=lambda: now[0], remember=2)
    refs = [ObjectRef("v1", "Ingress", "ns", f"o{i}") for i in range(5)]
    assert [spam.allow(r) for r in refs[:2] for _ in range(3)] == [True, True, False] * 2
    # A flood cycling through more objects than are remembered: each newcomer takes over a
    # spent bucket, so the cycle gets nothing more than the two bursts it already had.
    assert not any(spam.allow(r) for _ in range(10) for r in refs)
    assert len(spam._buckets) == 2
    now[0] = 100.0  # the inherited buckets refill as any other
    assert spam.allow(refs[0])


def test_a_flood_of_5000_objects_posts_at_most_the_table_burst() -> None:
    spam = SpamFilter(burst=25, refill=300.0, clock=lambda: 0.0, remember=4096)
    refs = [ObjectRef("v1", "Ingress", "evil", f"o{i}") for i in range(5000)]
    allowed = sum(spam.allow(r) for _ in range(30) for r in refs)
    assert allowed == 4096 * 25  # the table's burst, not 5000 * 25 for every round
