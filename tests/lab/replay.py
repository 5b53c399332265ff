"""Certificates written to Secrets, from the API server's replay of every change after a
resourceVersion (a watch from it): each write counts, however close together the writes were.
Used by lab tests and by bench/faults.py (duplicate certificates)."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core import certs


def certificates_written(api: ApiClient, namespace: str, since: str, name: str | None = None,
                         timeout: int = 2) -> dict[str, list[str]]:
    """Per Secret of `namespace` (or only `name`): the serials of the certificates written after
    `since`, in order; a serial repeats only when another came between (writes of annotations
    alone replay the same certificate). Raises when the replay is incomplete (410 Gone)."""
    core: Any = k8s.CoreV1Api(api)
    selector = {"field_selector": f"metadata.name={name}"} if name is not None else {}
    raw = core.list_namespaced_secret(namespace, watch=True, resource_version=since,
                                      timeout_seconds=timeout, _preload_content=False,
                                      **selector)
    written: dict[str, list[str]] = {}
    for line in raw.data.splitlines():
        event = json.loads(line)
        if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
            raise AssertionError(f"watch replay failed: {event}")
        crt = (event["object"].get("data") or {}).get("tls.crt")
        if event["type"] == "DELETED" or not crt:
            continue
        serial = certs.certificate_info(base64.b64decode(crt)).serial
        serials = written.setdefault(event["object"]["metadata"]["name"], [])
        if not serials or serials[-1] != serial:
            serials.append(serial)
    return written
