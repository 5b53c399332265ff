"""Managed-Secret label and annotations: what is written and how it reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from certbotk8s.core.model import KeyType
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, cert_info, desired


def test_build_metadata() -> None:
    d = desired("b.example.com", "a.example.com", profile="shortlived")
    info = cert_info("a.example.com", "b.example.com", key_type=KeyType.ECDSA_P384)
    meta = secret_meta.build_secret_metadata(d, info, T0 + timedelta(minutes=5))
    assert meta.labels == {"app.kubernetes.io/managed-by": "certbotk8s"}
    assert meta.annotations == {
        "certbotk8s.io/hosts": "a.example.com,b.example.com",
        "certbotk8s.io/issuer": "le",
        "certbotk8s.io/profile": "shortlived",
        "certbotk8s.io/key-type": "ecdsa-p384",
        "certbotk8s.io/not-before": "2025-01-01T00:00:00Z",
        "certbotk8s.io/not-after": "2025-04-01T00:00:00Z",
        "certbotk8s.io/serial": "0a1b",
        "certbotk8s.io/ari-cert-id": "aki.serial",
        "certbotk8s.io/source": "Ingress/default/web",
        "certbotk8s.io/issued-at": "2025-01-01T00:05:00Z",
    }


def test_empty_profile_annotation_for_the_default_profile() -> None:
    # empty = the CA's default; absent = lost (repaired without an order)
    meta = secret_meta.build_secret_metadata(desired(), cert_info(), T0)
    assert meta.annotations[secret_meta.PROFILE] == ""


def test_is_managed() -> None:
    assert secret_meta.is_managed({"app.kubernetes.io/managed-by": "certbotk8s"})
    assert not secret_meta.is_managed({"app.kubernetes.io/managed-by": "Helm"})
    assert not secret_meta.is_managed(None)


def test_time_round_trip_and_zones() -> None:
    local = datetime(2025, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert secret_meta.format_time(local) == "2025-01-01T00:00:00Z"
    assert secret_meta.format_time(datetime(2025, 1, 1)) == "2025-01-01T00:00:00Z"
    assert secret_meta.parse_time("2025-01-01T00:00:00Z") == datetime(2025, 1, 1, tzinfo=UTC)
    assert secret_meta.parse_time("yesterday") is None


def test_recorded_values() -> None:
    annotations = {
        secret_meta.HOSTS: "b.example.com, a.example.com,,",
        secret_meta.KEY_TYPE: "rsa-2048",
    }
    assert secret_meta.recorded_hosts(annotations) == ("a.example.com", "b.example.com")
    assert secret_meta.recorded_key_type(annotations) is KeyType.RSA_2048
    assert secret_meta.recorded_key_type({secret_meta.KEY_TYPE: "dsa"}) is None
