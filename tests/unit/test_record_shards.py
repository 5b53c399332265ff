"""The record shards on the API (adapters.kube.records) over a fake API server: the writes a
save makes, a shard created without first learning by a failed patch that it is missing."""

from __future__ import annotations

from typing import cast

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.records import KubeRecordStore, shard_name
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import records, secret_meta
from tests.unit.object_api import ObjectApi

OWN = "certbotk8s"
A = SecretRef("team-a", "web-tls")
SHARDS = "/api/v1/namespaces/certbotk8s/secrets"


def _store(api: ObjectApi) -> KubeRecordStore:
    return KubeRecordStore(cast(ApiClient, api), OWN, shards=4)


def test_a_shard_the_load_did_not_find_is_created_with_one_write() -> None:
    api = ObjectApi()
    store = _store(api)
    assert store.load() == {}
    store.save({A: {secret_meta.SERIAL: "0a"}})
    assert api.writes() == [("POST", SHARDS)]
    store.save({A: {secret_meta.SERIAL: "0b"}})  # made now: patched
    name = shard_name(records.shard_of(A, 4))
    assert api.writes()[1:] == [("PATCH", f"{SHARDS}/{name}")]
    assert _store(api).load() == {A: {secret_meta.SERIAL: "0b"}}


def test_a_shard_made_by_another_process_since_the_load_is_patched_not_replaced() -> None:
    api = ObjectApi()
    store = _store(api)
    store.load()
    other = _store(api)  # a CronJob run beside the controller
    b = next(SecretRef("team-b", f"s{i}") for i in range(100)
             if records.shard_of(SecretRef("team-b", f"s{i}"), 4) == records.shard_of(A, 4))
    other.save({b: {secret_meta.SERIAL: "0b"}})
    store.save({A: {secret_meta.SERIAL: "0a"}})
    assert [m for m, _ in api.writes()] == ["PATCH", "POST", "POST", "PATCH"]  # theirs, ours
    assert _store(api).load() == {A: {secret_meta.SERIAL: "0a"}, b: {secret_meta.SERIAL: "0b"}}


def test_without_a_load_a_missing_shard_is_learnt_from_the_patch() -> None:
    api = ObjectApi()
    _store(api).save({A: {secret_meta.SERIAL: "0a"}})
    assert [m for m, _ in api.writes()] == ["PATCH", "POST"]
