"""`renew --once` (app.orders.run_pass) takes claims, history and backoff from the
controller's records: a record whose source is gone starts its grace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from certbotk8s.app.oneshot.run import run_pass
from certbotk8s.app.orders import PassDeps
from certbotk8s.app.records import Records
from certbotk8s.core.model import ObjectRef, SecretRef
from certbotk8s.core.ports import SourceSnapshot, StoredSecret
from certbotk8s.core.state import records, secret_meta
from tests.unit.factories import T0, make_config
from tests.unit.fakes import FakeRecordStore


class NoSources:
    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        return SourceSnapshot()


class NothingDueSecrets:
    """Nothing is due: nothing may be written or annotated."""

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        return None

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        raise AssertionError("nothing is due: nothing may be written")

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        raise AssertionError("nothing is due: nothing may be annotated")


class NoEvents:
    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        raise AssertionError(f"no Event expected: {reason} {message}")


def test_a_pass_reads_the_records_and_releases_a_claim_whose_source_is_gone() -> None:
    store = FakeRecordStore()
    gone = SecretRef("team-a", "old-tls")
    store.records[gone] = {secret_meta.HOSTS: "old.example.com"}
    unused: Any = None  # no order is due, so no CA and no solver is touched
    deps = PassDeps(make_config(), NoSources(), NothingDueSecrets(), NoEvents(), unused, unused,
                    clock=lambda: T0, records=Records(store))
    report = run_pass(deps)
    assert not report.outcomes and not report.failed
    assert store.records[gone][records.RELEASED_AT] == secret_meta.format_time(T0)
