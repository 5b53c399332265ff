"""The replay of certificates written (tests/lab/replay.py, bench/faults.py's duplicate count)
sees every certificate written to a Secret on the real API server, even within one second.
(Following writes across an API server restart: test_kube_faults.py, in the suite's one restart.)"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client as k8s
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes.client import ApiClient

from .conftest import Lab
from .replay import certificates_written

pytestmark = pytest.mark.lab


def _certificate(serial: int, host: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(x509.Name([]))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _tls(name: str, crt: bytes, note: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "annotations": {"note": note}},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": ""}}


def test_every_certificate_written_is_replayed_in_order_annotation_writes_are_not(
    lab: Lab, admin_api: ApiClient, namespace: str
) -> None:
    core: Any = k8s.CoreV1Api(admin_api)
    since = core.list_namespaced_secret(namespace).metadata.resource_version
    first, second = _certificate(0x1001, "a.test"), _certificate(0x1002, "a.test")
    core.create_namespaced_secret(namespace, _tls("f000-tls", first))
    core.replace_namespaced_secret("f000-tls", namespace, _tls("f000-tls", first, "notes only"))
    core.replace_namespaced_secret("f000-tls", namespace, _tls("f000-tls", second))
    core.replace_namespaced_secret("f000-tls", namespace, _tls("f000-tls", second, "again"))
    core.create_namespaced_secret(namespace, _tls("f001-tls", _certificate(0x2001, "b.test")))
    core.create_namespaced_secret(namespace, {"metadata": {"name": "plain"}, "data": {}})
    # Four writes to f000-tls within a second or so, two certificates: one beyond the first.
    assert certificates_written(admin_api, namespace, since) == {
        "f000-tls": ["1001", "1002"], "f001-tls": ["2001"]}
    core.replace_namespaced_secret("f001-tls", namespace,
                                   _tls("f001-tls", _certificate(0x2002, "b.test")))
    core.replace_namespaced_secret("f001-tls", namespace,
                                   _tls("f001-tls", _certificate(0x2001, "b.test")))
    assert certificates_written(admin_api, namespace, since, "f001-tls") == {
        "f001-tls": ["2001", "2002", "2001"]}  # written again: counted again
