"""The controller's keyed work queue (app/controller/work_queue.py), with real worker threads
synchronised by events: dedup of waiting keys, one worker per key, dirty re-adds, delayed adds
on the fake clock's timer, and a shutdown that drains."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from certbotk8s.app.controller.work_queue import KeyedWorkQueue

from .cluster import FakeClock, FakeTimer

WAIT = 30.0  # a safety valve only: every wait below is for an event that is due


def _queue() -> tuple[KeyedWorkQueue[str], FakeClock, FakeTimer]:
    clock = FakeClock(datetime(2025, 3, 1, tzinfo=UTC))
    timer = FakeTimer(clock)
    return KeyedWorkQueue(timer, clock=clock), clock, timer


class Worker(threading.Thread):
    """Takes keys until the queue shuts down; `handle(key)` runs for each, then `done`."""

    def __init__(self, queue: KeyedWorkQueue[str], handle: Callable[[str], None]) -> None:
        super().__init__(daemon=True)
        self.queue, self.handle = queue, handle
        self.handled: list[str] = []

    def run(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.handle(key)
                self.handled.append(key)
            finally:
                self.queue.done(key)


def test_a_key_added_while_it_waits_is_handed_out_once() -> None:
    queue, _, _ = _queue()
    for key in ("a", "b", "a", "a", "b"):
        queue.add(key)
    assert len(queue) == 2
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_dirty_key_is_handed_out_again_after_done() -> None:
    queue, _, _ = _queue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")  # while processing
    assert queue.get(0) is None  # not handed out meanwhile
    queue.done("a")
    assert queue.get(0) == "a"  # once, now
    queue.done("a")
    assert queue.get(0) is None


def test_a_key_is_never_processed_by_two_threads_at_once() -> None:
    queue, _, _ = _queue()
    holding, release = threading.Event(), threading.Event()
    second_turn = threading.Event()
    calls: list[str] = []

    def handle(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            holding.set()
            assert release.wait(WAIT)
        else:
            second_turn.set()

    workers = [Worker(queue, handle) for _ in range(3)]
    for worker in workers:
        worker.start()
    queue.add("a")
    assert holding.wait(WAIT)  # the first worker is inside handle("a")
    queue.add("a")
    queue.add("b")  # another key goes to another worker meanwhile
    assert second_turn.wait(WAIT)
    assert calls == ["a", "b"]  # "a" waited; "b" did not wait for it
    assert queue.processing() == {"a"} and len(queue) == 0
    second_turn.clear()
    release.set()
    assert second_turn.wait(WAIT)  # "a" again, after its first turn was done
    assert queue.shutdown(WAIT)
    for worker in workers:
        worker.join(WAIT)
    assert calls == ["a", "b", "a"]


def test_a_delayed_add_comes_at_its_moment_on_the_clock_and_a_later_one_replaces_it() -> None:
    queue, clock, timer = _queue()
    start = clock()
    queue.add_after("a", timedelta(minutes=10))
    queue.add_at("a", start + timedelta(minutes=20))  # replaces: one moment per key
    queue.add_after("b", timedelta(minutes=5))
    assert queue.scheduled() == {"a": start + timedelta(minutes=20),
                                 "b": start + timedelta(minutes=5)}
    clock.advance(timedelta(minutes=10))
    timer.fire_due()
    assert queue.get(0) == "b" and queue.get(0) is None
    clock.advance(timedelta(minutes=10))
    timer.fire_due()
    assert queue.get(0) == "a"
    assert queue.scheduled() == {}


def test_a_forgotten_delayed_add_never_comes() -> None:
    queue, clock, timer = _queue()
    queue.add_after("a", timedelta(minutes=1))
    queue.forget("a")
    clock.advance(timedelta(minutes=2))
    timer.fire_due()
    assert queue.get(0) is None and timer.jobs == {}


def test_a_delayed_add_of_a_key_being_processed_comes_after_it_is_done() -> None:
    queue, clock, timer = _queue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add_after("a", timedelta(seconds=10))
    clock.advance(timedelta(seconds=10))
    timer.fire_due()
    assert queue.get(0) is None
    queue.done("a")
    assert queue.get(0) == "a"


def test_shutdown_waits_for_running_work_drops_the_rest_and_stops_every_worker() -> None:
    queue, _, timer = _queue()
    holding, release = threading.Event(), threading.Event()

    def handle(key: str) -> None:
        if key == "slow":
            holding.set()
            assert release.wait(WAIT)

    workers = [Worker(queue, handle) for _ in range(2)]
    queue.add("slow")
    workers[0].start()
    assert holding.wait(WAIT)
    queue.add("queued")
    queue.add_after("later", timedelta(hours=1))
    assert queue.shutdown(0) is False  # "slow" is still running
    release.set()
    assert queue.shutdown(WAIT) is True  # drained: "slow" finished
    workers[1].start()  # a worker that starts now gets nothing
    for worker in workers:
        worker.join(WAIT)
        assert not worker.is_alive()
    assert workers[0].handled == ["slow"] and workers[1].handled == []
    assert timer.jobs == {} and queue.scheduled() == {}
    queue.add("after")  # ignored once shut down
    assert len(queue) == 0 and queue.get(0) is None
