"""Kubernetes Events on source objects (EventRecorder) and reading them back (`list_events`).

Events are core/v1 Events in the involved object's namespace. A repeat of the same
(object, type, reason, message) within `DEDUP_WINDOW` patches the earlier Event's count and
lastTimestamp instead of creating another one, like client-go's event correlator. Each object
may have at most `SPAM_BURST` Events posted or bumped, then one per `SPAM_REFILL` seconds
(client-go's EventSourceObjectSpamFilter): a tenant's object cannot flood the API server.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import (
    MERGE_PATCH,
    JsonDict,
    Op,
    micro_time,
    request,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.watch import EVENTS, list_objects
from certbotk8s.core.errors import KubeError
from certbotk8s.core.model import ObjectRef
from certbotk8s.core.sources.text import MESSAGE_LIMIT, escape_controls
from certbotk8s.core.state.secret_meta import parse_time

log = logging.getLogger(__name__)

DEDUP_WINDOW = timedelta(minutes=30)  # below the API server's default Event TTL (1 h)
DEDUP_ENTRIES = 1024
EVENT_TYPES = ("Normal", "Warning")
SPAM_BURST = 25
SPAM_REFILL = 300.0  # seconds per further Event on one object, after the burst
SPAM_OBJECTS = 4096  # objects the spam filter keeps a bucket for


class EventRow(NamedTuple):
    """One Event as `status` shows it."""

    type: str
    reason: str
    message: str
    time: datetime | None


@dataclass
class _Posted:
    namespace: str
    name: str
    count: int
    first_seen: datetime
    last_seen: datetime


def event_message(message: str) -> str:
    """What an Event may say: one line, control characters escaped, at most 1 KiB. The last
    line of defence: tenant text in `message` was already quoted where it was put in."""
    return escape_controls(message, MESSAGE_LIMIT)


class SpamFilter:
    """A token bucket per involved object, for at most `remember` objects (SPAM_OBJECTS: about
    1.5 MiB at full size).

    Forgetting never hands out Events: when the table is full, an object seen for the first
    time takes over the bucket of the least recently used one, with the tokens that one has
    (refilled to now), not a fresh burst. So a flood cycling through more objects than the
    table holds shares `remember` buckets (at most `remember * burst` Events at once, then
    `remember / refill` a second) instead of getting a new burst for every object it revisits.
    """

    def __init__(self, burst: int = SPAM_BURST, refill: float = SPAM_REFILL,
                 clock: Callable[[], float] = time.monotonic,
                 remember: int = SPAM_OBJECTS) -> None:
        self._burst, self._refill, self._clock, self._remember = burst, refill, clock, remember
        self._buckets: OrderedDict[ObjectRef, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, obj: ObjectRef) -> bool:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(obj, None)
            if bucket is None and len(self._buckets) >= self._remember:
                bucket = self._buckets.popitem(last=False)[1]  # the LRU one's, not a fresh one
            tokens, at = bucket or (float(self._burst), now)
            tokens = min(float(self._burst), tokens + (now - at) / self._refill)
            allowed = tokens >= 1.0
            self._buckets[obj] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


def _default_instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname() or "certbotk8s"


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")



class KubeEventRecorder:
    """EventRecorder on core/v1 Events. Never raises: failures are logged and dropped."""

    def __init__(self, api_client: ApiClient, component: str = "certbotk8s",
                 instance: str | None = None) -> None:
        self._rest = KubeRest(api_client)
        self._component = component
        self._instance = (instance or _default_instance())[:128]
        self._posted: OrderedDict[tuple[ObjectRef, str, str, str], _Posted] = OrderedDict()
        self._lock = threading.Lock()
        self._spam = SpamFilter()

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        if not self._spam.allow(obj):
            log.debug("Event %s on %s dropped: too many Events on this object", reason, obj)
            return
        try:
            self._record(obj, type if type in EVENT_TYPES else "Warning", reason,
                         event_message(message))
        except KubeError as e:
            log.warning("could not post Event %s on %s: %s", reason, obj, e)
        except Exception:  # never raise from an Event
            log.exception("could not post Event %s on %s", reason, obj)

    def _record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        key = (obj, type, reason, message)
        with self._lock:
            posted = self._posted.get(key)
            if posted is not None and now - posted.last_seen > DEDUP_WINDOW:
                del self._posted[key]
                posted = None
        if posted is not None and self._bump(posted, now):
            with self._lock:
                self._posted.move_to_end(key)
            return
        created = self._create(obj, type, reason, message, now)
        with self._lock:
            self._posted[key] = created
            self._posted.move_to_end(key)
            while len(self._posted) > DEDUP_ENTRIES:
                self._posted.popitem(last=False)

    def _bump(self, posted: _Posted, now: datetime) -> bool:
        """Count one more occurrence on an earlier Event; False when that Event is gone."""
        body = {"count": posted.count + 1, "lastTimestamp": _rfc3339(now)}
        patched = request(
            Op("patch", "events", posted.namespace, posted.name),
            lambda: self._rest.patch(rest.path("v1", "events", posted.namespace, posted.name),
                                     body, MERGE_PATCH),
        )
        if patched is None:
            return False
        posted.count += 1
        posted.last_seen = now
        return True

    def _create(self, obj: ObjectRef, type: str, reason: str, message: str,
                now: datetime) -> _Posted:
        name = f"{obj.name}.{secrets.token_hex(8)}"
        involved: JsonDict = {"apiVersion": obj.api_version, "kind": obj.kind,
                              "namespace": obj.namespace, "name": obj.name}
        if obj.uid:
            involved["uid"] = obj.uid
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": obj.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": _rfc3339(now),
            "lastTimestamp": _rfc3339(now),
            "eventTime": micro_time(now),
            "action": reason,
            "source": {"component": self._component, "host": self._instance},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
        }
        op = Op("create", "events", obj.namespace, name)
        created = request(op, lambda: self._rest.post(rest.path("v1", "events", obj.namespace),
                                                      body))
        if created is None:
            raise KubeError(f"{op} failed: namespace {obj.namespace} not found")
        return _Posted(obj.namespace, name, 1, now, now)


def _event_time(event: JsonDict) -> datetime | None:
    """When the Event last happened: the later of lastTimestamp (whole seconds) and eventTime
    (microseconds), else firstTimestamp, else the object's creation time."""
    meta = event.get("metadata") or {}
    parsed = [parse_time(text) for text in (event.get("lastTimestamp"), event.get("eventTime"))
              if isinstance(text, str) and text]
    known = [value for value in parsed if value is not None]
    if known:
        return max(known)
    for text in (event.get("firstTimestamp"), meta.get("creationTimestamp")):
        if isinstance(text, str) and text and (value := parse_time(text)) is not None:
            return value
    return None


def list_events(api_client: ApiClient, obj: ObjectRef) -> list[EventRow]:
    """Events on one object (matched by kind and name, and uid when known), newest last."""
    selector = f"involvedObject.kind={obj.kind},involvedObject.name={obj.name}"
    if obj.uid:
        selector += f",involvedObject.uid={obj.uid}"
    events = replace(EVENTS, field_selector=selector).in_namespace(obj.namespace)
    items = list_objects(api_client, events) or []
    rows = [
        EventRow(str(e.get("type") or ""), str(e.get("reason") or ""),
                 str(e.get("message") or ""), _event_time(e))
        for e in items
    ]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda row: row.time or oldest)
