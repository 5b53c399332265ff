"""Certificates written to Secrets, from the API server's replay of every change after a
resourceVersion (a watch from it): each write counts, however close together the writes were.
Used by lab tests and by bench/faults.py (duplicate certificates)."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs


class Expired(Exception):
    """The API server no longer has the version asked for (410: e.g. it restarted since, and
    its watch cache begins later)."""


class CertificateWrites:
    """The serials written to each Secret of `namespace` (or only `name`) after `since`, in
    order; a serial repeats only when another came between (writes of annotations alone replay
    the same certificate). `catch_up` replays what came since the last call."""

    def __init__(self, api: ApiClient, namespace: str, since: str,
                 name: str | None = None) -> None:
        self._core: Any = k8s.CoreV1Api(api)
        self.namespace, self.since, self.name = namespace, since, name
        self.written: dict[str, list[str]] = {}
        self.relists = 0  # gaps `follow` filled in from a list (see there)

    def _note(self, obj: dict[str, Any]) -> None:
        crt = (obj.get("data") or {}).get("tls.crt")
        if not crt:
            return
        serial = certs.certificate_info(base64.b64decode(crt)).serial
        serials = self.written.setdefault(obj["metadata"]["name"], [])
        if not serials or serials[-1] != serial:
            serials.append(serial)

    def _selector(self) -> dict[str, str]:
        return {"field_selector": f"metadata.name={self.name}"} if self.name else {}

    def catch_up(self, timeout: int = 2) -> None:
        """Every change since the last version seen (raises `Expired` when it is gone)."""
        raw = self._core.list_namespaced_secret(
            self.namespace, watch=True, resource_version=self.since, timeout_seconds=timeout,
            allow_watch_bookmarks=True, _preload_content=False, _request_timeout=timeout + 10,
            **self._selector())
        for line in raw.data.splitlines():
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":
                if obj.get("code") == 410:
                    raise Expired(str(obj.get("message")))
                raise AssertionError(f"watch replay failed: {event}")
            self.since = obj["metadata"].get("resourceVersion") or self.since
            if event["type"] in ("ADDED", "MODIFIED"):
                self._note(obj)

    def follow(self, timeout: int = 2) -> None:
        """`catch_up`; where the version is gone, a list of the Secrets fills the gap instead
        (it sees the certificate each holds now: one written and replaced again within that
        gap alone would be missed, so `relists` counts such gaps)."""
        try:
            self.catch_up(timeout)
        except Expired:
            listed = self._core.list_namespaced_secret(self.namespace, **self._selector())
            for secret in listed.items:
                self._note(self._core.api_client.sanitize_for_serialization(secret))
            self.since = listed.metadata.resource_version
            self.relists += 1


def certificates_written(api: ApiClient, namespace: str, since: str, name: str | None = None,
                         timeout: int = 2) -> dict[str, list[str]]:
    """Per Secret: the serials written after `since`, in order (raises `Expired` when the API
    server no longer has `since`)."""
    writes = CertificateWrites(api, namespace, since, name)
    writes.catch_up(timeout)
    return writes.written
