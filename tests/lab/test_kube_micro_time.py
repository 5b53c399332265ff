"""The real API server takes an Event whose MicroTime falls on a whole second."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.client import micro_time

pytestmark = pytest.mark.lab


def _event(namespace: str, name: str, event_time: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "any",
                               "namespace": namespace},
            "reason": "Test", "message": "whole second", "type": "Normal",
            "eventTime": event_time, "action": "Test", "reportingComponent": "certbotk8s",
            "reportingInstance": "test"}


def test_an_event_at_a_whole_second_is_accepted(admin_api: ApiClient, namespace: str) -> None:
    core: Any = k8s.CoreV1Api(admin_api)
    whole = datetime.now(UTC).replace(microsecond=0)
    # The plain format loses its fraction in the client's round trip: 400 from the server.
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_event(
            namespace, _event(namespace, "plain", whole.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    assert refused.value.status == 400
    created = core.create_namespaced_event(namespace, _event(namespace, "micro", micro_time(whole)))
    assert created.event_time.replace(microsecond=0) == whole
