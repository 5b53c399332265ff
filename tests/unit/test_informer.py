"""Informer loop with a scripted API (fake `_get`): 410 on the watch request re-lists, and a watch
broken mid-stream resumes from the last resourceVersion it delivered."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.watch import Informer, WatchedResource

SECRETS = WatchedResource("secrets", "/api/v1/secrets", "v1", "Secret")


class Raw:
    """Just enough of a urllib3 response for the informer."""

    def __init__(self, body: bytes, fail_after: bool = False) -> None:
        self.data, self.chunked, self.status = body, False, 200
        self._fail_after = fail_after

    def stream(self, size: int) -> Iterator[bytes]:
        yield self.data
        if self._fail_after:
            raise OSError("connection reset by peer")

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def _item(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def _event(kind: str, name: str, version: str) -> bytes:
    return json.dumps({"type": kind, "object": _item(name, version)}).encode() + b"\n"


class Scripted(Informer):
    """Answers each GET from a script; records the queries; stops when the script ends."""

    def __init__(self, script: list[Any], health: Any = None) -> None:
        super().__init__(None, SECRETS, self._changed, health=health)  # type: ignore[arg-type]
        self.script, self.queries, self.changes = script, list[dict[str, str]](), list[Any]()
        self.done = threading.Event()

    def _changed(self, key: Any, obj: Any) -> None:
        self.changes.append((key, obj is not None))

    def _get(self, query: list[tuple[str, str]], timeout: tuple[float, float]) -> Any:
        self.queries.append(dict(query))
        if not self.script:
            self.done.set()
            self._stop.set()
            raise OSError("script over")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


class Health:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def reached(self, resource: str) -> None:
        self.calls.append(("reached", resource))

    def failed(self, resource: str, cause: str) -> None:
        self.calls.append(("failed", cause))

    def expired(self, resource: str) -> None:
        self.calls.append(("expired", resource))


def _listing(version: str, *names: str) -> Raw:
    return Raw(json.dumps({"metadata": {"resourceVersion": version},
                           "items": [_item(n, version) for n in names]}).encode())


def test_410_on_the_watch_request_lists_again_and_replaces_the_cache() -> None:
    health = Health()
    informer = Scripted([_listing("5", "a", "b"), ApiException(status=410, reason="Gone"),
                         _listing("9", "b", "c")], health)
    informer.start()
    assert informer.done.wait(10)
    informer.stop()
    lists = [q for q in informer.queries if "watch" not in q]
    watches = [q["resourceVersion"] for q in informer.queries if "watch" in q]
    assert len(lists) == 2 and watches[:2] == ["5", "9"]
    assert set(informer.cache) == {("ns", "b"), ("ns", "c")}
    assert (("ns", "a"), False) in informer.changes  # deleted while the watch was away
    assert ("expired", "secrets") in health.calls


def test_a_broken_watch_resumes_from_the_last_version_it_delivered() -> None:
    health = Health()
    informer = Scripted([_listing("5", "a"),
                         Raw(_event("ADDED", "b", "7") + _event("MODIFIED", "a", "8"),
                             fail_after=True)], health)
    informer.start()
    assert informer.done.wait(10)
    informer.stop()
    watches = [q["resourceVersion"] for q in informer.queries if "watch" in q]
    assert watches[:2] == ["5", "8"]  # not 5 again: the events up to 8 are applied already
    assert set(informer.cache) == {("ns", "a"), ("ns", "b")}
    assert ("failed", "connection reset") in health.calls  # in plain words


def test_a_403_is_an_answer_not_an_outage() -> None:
    health = Health()
    informer = Scripted([ApiException(status=403, reason="Forbidden")], health)
    informer.start()
    assert informer.done.wait(10)
    informer.stop()
    assert ("reached", "secrets") in health.calls
    assert not any(what == "failed" and "403" in cause for what, cause in health.calls)
