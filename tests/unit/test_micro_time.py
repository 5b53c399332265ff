"""MicroTime strings survive the client's dict -> model -> JSON round trip (Events, Leases)."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.client import micro_time


def _as_sent(event_time: str) -> str:
    # What create_namespaced_event really sends for a dict body: validated into the model,
    # then serialized again.
    event = client.CoreV1Event.from_dict({"metadata": {"name": "x"},
                                          "involvedObject": {"kind": "Pod", "name": "p"},
                                          "eventTime": event_time})
    sent: str = ApiClient().sanitize_for_serialization(event)["eventTime"]  # type: ignore[no-untyped-call]
    return sent


def test_a_whole_second_keeps_its_six_fractional_digits_on_the_wire() -> None:
    whole = datetime(2026, 12, 2, 3, 26, 57, tzinfo=UTC)
    # The bug: "2026-12-02T03:26:57+00:00", which the API server refuses as a MicroTime.
    assert _as_sent(whole.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == "2026-12-02T03:26:57+00:00"
    assert _as_sent(micro_time(whole)) == "2026-12-02T03:26:57.000001+00:00"


def test_other_instants_are_sent_as_they_are() -> None:
    at = datetime(2026, 12, 2, 3, 26, 57, 123456, tzinfo=UTC)
    assert micro_time(at) == "2026-12-02T03:26:57.123456Z"
    assert _as_sent(micro_time(at)) == "2026-12-02T03:26:57.123456+00:00"
