"""Events off the order path: queue budgets and summaries; a flood does not delay a victim."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from certbotk8s.app.event_queue import DROPPED_REASON, EventBudget, QueuedEventRecorder
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.model import ObjectRef, SecretRef

from . import hostile
from .factories import ingress, make_config, tls_entry
from .hostile import NOW


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("networking.k8s.io/v1", "Ingress", namespace, name)


@dataclass
class Posted:
    events: list[tuple[ObjectRef, str, str, str]] = field(default_factory=list)

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        self.events.append((obj, type, reason, message))


def test_budgets_per_object_and_namespace_then_one_summary_per_namespace() -> None:
    now, drops = [0.0], list[str]()
    inner = Posted()
    queue = QueuedEventRecorder(inner, EventBudget(window=60, per_namespace=5, per_source=2),
                                clock=lambda: now[0], on_drop=drops.append).start()
    try:
        for _ in range(3):
            queue.record(_ref("evil", "one"), "Warning", "Bad", "m")  # third: over per-source
        for i in range(6):
            queue.record(_ref("evil", f"o{i}"), "Warning", "Bad", "m")  # 3 fit the namespace
        queue.record(_ref("calm", "web"), "Normal", "Issued", "ok")  # another namespace's own
        assert queue.flush(10)
        assert len(inner.events) == 6
        assert drops == ["source", "namespace", "namespace", "namespace"]
        now[0] = 61.0  # the window ends: its drops are summarised on the first object dropped
        queue.record(_ref("evil", "again"), "Warning", "Bad", "m")
        assert queue.flush(10)
    finally:
        queue.close()
    summaries = [e for e in inner.events if e[2] == DROPPED_REASON]
    assert [(o, t) for o, t, _, _ in summaries] == [(_ref("evil", "one"), "Warning")]
    assert summaries[0][3].startswith("4 Events about objects in namespace evil")
    assert inner.events[-1][0] == _ref("evil", "again")  # a new window, a new budget


def test_a_full_queue_drops_and_close_posts_what_is_queued() -> None:
    gate, inner = threading.Event(), Posted()

    class Held(Posted):
        def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
            gate.wait(10)
            inner.record(obj, type, reason, message)

    drops: list[str] = []
    queue = QueuedEventRecorder(Held(), EventBudget(capacity=3, per_namespace=100),
                                on_drop=drops.append).start()
    for i in range(10):
        queue.record(_ref(f"ns{i}", "o"), "Warning", "Bad", "m")
    assert "queue" in drops and len(drops) <= 10 - 3
    gate.set()
    queue.close(timeout=10)
    assert len(inner.events) == 10 - len(drops)


def test_a_flood_of_hostile_objects_does_not_delay_a_victims_order() -> None:
    """2,000 refused Ingresses in one namespace and a victim's new certificate in another: the
    reconciler hands the victim's order to the runner without waiting for any Event to be
    posted (the recorder is held until then); the flood then posts only its budget."""
    config = make_config()
    hostile_objects = [ingress(f"h{i}", "evil", annotations={
        "certbotk8s.io/enabled": "true", "certbotk8s.io/key-type": "rsa-1"},
        tls=[tls_entry(f"h{i}-tls", f"h{i}.evil.example.com")]) for i in range(2000)]
    victim = ingress("shop", "team-b", tls=[tls_entry("shop-tls", "shop.example.com")])
    ingresses = [*hostile_objects, victim]
    deps = hostile.pass_deps(config, ingresses, [], NOW)
    released, order_path = threading.Event(), threading.current_thread()
    posted = Posted()
    on_order_path: list[str] = []

    class SlowApi:
        """Each post waits until the victim's order is handed over (as a slow API server)."""

        def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
            if threading.current_thread() is order_path:
                on_order_path.append(reason)  # what the synchronous code path did
                return
            released.wait(10)
            posted.record(obj, type, reason, message)

    class Runner(hostile.Runner):
        def order(self, action: Any) -> None:
            super().order(action)
            released.set()

    metrics = Metrics(process=False)
    queue = QueuedEventRecorder(SlowApi(), on_drop=metrics.count_event_dropped).start()
    deps.events = queue
    runner = Runner()
    try:
        hostile.reconciler(deps, hostile.Watch(ingresses, []), runner, hostile.Schedule(),
                           metrics).reconcile(NOW)
        assert [d.secret for d in runner.submitted] == [SecretRef("team-b", "shop-tls")]
        assert on_order_path == []
        assert queue.flush(30)
    finally:
        queue.close()
    evil = [e for e in posted.events if e[0].namespace == "evil"]
    assert len(evil) == EventBudget().per_namespace
    assert metrics.events_dropped.labels("namespace")._value.get() >= 2000 - len(evil)
