"""The controller's certificate records: their form (core.state.records) and the in-memory table
both modes read and write through (app.records) over a fake store."""

from __future__ import annotations

import base64
from datetime import timedelta

from certbotk8s.adapters.kube.records import _decode
from certbotk8s.app.records import ARI_MOMENT_HOLD, ORDER_END_HOLD, Records
from certbotk8s.core.errors import KubeUnreachable
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import records, secret_meta

from .factories import T0
from .fakes import FakeRecordStore

A = SecretRef("team-a", "web-tls")
B = SecretRef("team-b", "shop-tls")
HOUR = timedelta(hours=1)


def test_a_burst_of_changes_is_one_save_and_a_forced_flush_writes_the_rest() -> None:
    store = FakeRecordStore()
    kept = Records(store, save_every=3600)
    kept.update(A, {secret_meta.HOSTS: "a.example.com"})  # the first write goes at once
    for i in range(50):
        kept.update(B, {secret_meta.SERIAL: f"{i:x}"})
    assert store.saves == 1 and B not in store.records
    kept.flush(force=True)
    assert store.saves == 2 and store.records[B][secret_meta.SERIAL] == "31"


def test_update_removes_keys_given_none_and_saves_nothing_when_nothing_changed() -> None:
    store = FakeRecordStore()
    kept = Records(store, save_every=0)
    kept.update(A, {secret_meta.FAILURES: "2", secret_meta.LAST_ERROR: "boom"})
    kept.update(A, {secret_meta.FAILURES: None})
    assert store.records[A] == {secret_meta.LAST_ERROR: "boom"}
    saves = store.saves
    kept.update(A, {secret_meta.LAST_ERROR: "boom"})
    assert store.saves == saves
    kept.remove(A)
    assert A not in store.records and kept.get(A) == {}


def test_load_keeps_changes_not_yet_saved() -> None:
    store = FakeRecordStore()
    store.records[A] = {secret_meta.HOSTS: "old.example.com"}
    store.records[B] = {secret_meta.HOSTS: "b.example.com"}
    kept = Records(store, save_every=3600)
    kept.load()
    kept.flush(force=True)  # nothing dirty: nothing saved
    kept.update(A, {secret_meta.HOSTS: "new.example.com"})  # goes at once (first write)
    kept.update(A, {secret_meta.SERIAL: "ab"})  # waits for the throttle
    kept.load()
    assert kept.get(A)[secret_meta.SERIAL] == "ab"
    assert kept.get(B) == {secret_meta.HOSTS: "b.example.com"}


def test_records_deleted_from_the_store_are_written_again() -> None:
    store = FakeRecordStore()
    kept = Records(store, save_every=0)
    kept.update(A, {secret_meta.HOSTS: "a.example.com"})
    kept.update(B, {secret_meta.HOSTS: "b.example.com"})
    store.records.clear()  # someone deleted the shards
    assert kept.restore_missing() == 2
    assert set(store.records) == {A, B}
    # a record another writer changed in the store is theirs: not overwritten
    store.records[A] = {secret_meta.HOSTS: "a.example.com", secret_meta.SERIAL: "cd"}
    assert kept.restore_missing() == 0 and store.records[A][secret_meta.SERIAL] == "cd"


def test_reload_merges_another_writers_issuances_into_the_history() -> None:
    store = FakeRecordStore()
    kept = Records(store, save_every=0)
    first = secret_meta.format_time(T0)
    kept.update(A, {secret_meta.ISSUANCE_HISTORY: first})
    theirs = secret_meta.format_time(T0 + HOUR)
    store.records[A] = {secret_meta.ISSUANCE_HISTORY: f"{first},{theirs}",
                        secret_meta.SERIAL: "ef"}
    kept.reload(A)
    assert kept.get(A)[secret_meta.ISSUANCE_HISTORY] == f"{first},{theirs}"
    assert kept.get(A)[secret_meta.SERIAL] == "ef"


def test_a_claim_is_released_when_no_source_wants_it_and_kept_when_one_does_again() -> None:
    held = {A: {secret_meta.HOSTS: "a.example.com"},
            B: {secret_meta.HOSTS: "b.example.com", records.RELEASED_AT: "x"}}
    changes = records.release_changes(held, [B], T0)
    assert changes == {A: {records.RELEASED_AT: secret_meta.format_time(T0)},
                       B: {records.RELEASED_AT: None}}
    assert records.release_changes(held, [B], T0, in_scope=["team-b"]) == {
        B: {records.RELEASED_AT: None}}


def test_a_released_record_goes_only_after_grace_and_the_history_window() -> None:
    record = {secret_meta.HOSTS: "a.example.com", records.RELEASED_AT: secret_meta.format_time(T0)}
    assert not records.expired(record, T0 + timedelta(days=6), HOUR)
    assert records.expired(record, T0 + timedelta(days=7), HOUR)
    assert not records.expired({secret_meta.HOSTS: "a.example.com"}, T0 + timedelta(days=99), HOUR)


def test_the_claim_keeps_its_start_while_any_host_stays() -> None:
    record = {secret_meta.HOSTS: "a.example.com,b.example.com",
              records.CLAIMED_SINCE: "2024-01-01T00:00:00Z"}
    assert records.claim_start(record, ("b.example.com", "c.example.com"), T0) == \
        "2024-01-01T00:00:00Z"
    assert records.claim_start(record, ("c.example.com",), T0) == secret_meta.format_time(T0)
    assert records.claim_start({}, ("a.example.com",), T0) == secret_meta.format_time(T0)


def test_stored_entries_that_are_not_records_are_skipped() -> None:
    def encoded(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    assert _decode(encoded(b'{"certbotk8s.io/hosts": "a.example.com"}')) == {
        secret_meta.HOSTS: "a.example.com"}
    for raw in (b"[1,2]", b"{", b"\xff\xfe", b'{"k": 1}', b"[" * 100_000):
        assert not _decode(encoded(raw))
    assert _decode("not base64!") is None
    assert _decode(encoded(b'{"a": "' + b"x" * 5000 + b'"}')) == {}  # oversized value dropped
    assert records.ref_of("team-a.web-tls.v2") == SecretRef("team-a", "web-tls.v2")
    assert records.ref_of("no-dot") is None
    assert records.shard_of(A) == records.shard_of(SecretRef("team-a", "web-tls"))


def test_written_behind_nothing_is_saved_on_the_changing_thread() -> None:
    """The controller's records: an order worker never waits for a shard write; the owner's
    periodic flush saves the burst at once."""
    store = FakeRecordStore()
    kept = Records(store, save_every=0, write_behind=True)
    kept.update(A, {secret_meta.HOSTS: "a.example.com"})
    kept.replace(B, {secret_meta.HOSTS: "b.example.com"})
    assert store.saves == 0
    kept.flush(force=True)
    assert store.saves == 1 and set(store.records) == {A, B}


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _behind(store: FakeRecordStore, clock: Monotonic) -> Records:
    return Records(store, save_every=0, write_behind=True, clock=clock)


ORDER = {records.ORDER_URL: "https://ca/order/1", records.ORDER_HOSTS: "a.test"}
ISSUED = {secret_meta.SERIAL: "0a", secret_meta.HOSTS: "a.test"}
MOMENT = {secret_meta.RENEWAL_MOMENT: "2026-12-09T00:00:00Z c w"}


def test_an_order_its_certificate_and_its_ari_moment_are_one_write() -> None:
    """The controller's path: the order placed (in flight), the certificate issued 2 s later,
    its ARI moment chosen within the next two 5 s rounds, flushes every 5 s. The held changes
    wait for the moment: one save, holding what three would have left."""
    store, clock = FakeRecordStore(), Monotonic()
    kept = _behind(store, clock)
    kept.update(A, ORDER, hold=ORDER_END_HOLD)
    clock.now += 2
    kept.replace(A, ISSUED, hold=ARI_MOMENT_HOLD)
    for _ in range(2):  # two flushes while the ARI moment is on its way
        clock.now += 4.5
        kept.flush(force=True)
    assert store.saves == 0
    kept.update(A, MOMENT)
    kept.flush(force=True)
    assert store.saves == 1 and store.records[A] == {**ISSUED, **MOMENT}


def test_an_order_still_running_after_its_hold_is_saved_for_a_new_leader() -> None:
    store, clock = FakeRecordStore(), Monotonic()
    kept = _behind(store, clock)
    kept.update(A, ORDER, hold=ORDER_END_HOLD)
    kept.flush(force=True)
    assert store.saves == 0  # it may end within its hold: then it needs no write
    clock.now += ORDER_END_HOLD
    kept.flush(force=True)
    assert store.records[A] == ORDER


def test_a_held_change_is_saved_when_its_hold_runs_out() -> None:
    store, clock = FakeRecordStore(), Monotonic()
    kept = _behind(store, clock)
    kept.replace(A, ISSUED, hold=ARI_MOMENT_HOLD)  # no ARI moment follows (a CA without ARI)
    clock.now += ARI_MOMENT_HOLD - 0.1
    kept.flush(force=True)
    assert store.saves == 0
    clock.now += 0.1
    kept.flush(force=True)
    assert store.records[A] == ISSUED


def test_a_later_held_change_never_delays_one_already_due() -> None:
    store, clock = FakeRecordStore(), Monotonic()
    kept = _behind(store, clock)
    kept.update(A, {secret_meta.LAST_ERROR: "boom"})
    kept.update(A, ORDER, hold=ORDER_END_HOLD)
    kept.replace(B, ISSUED, hold=ARI_MOMENT_HOLD)
    kept.flush(force=True)
    assert store.records == {A: {secret_meta.LAST_ERROR: "boom", **ORDER}}


def test_the_final_flush_writes_held_changes_and_a_failed_save_keeps_them() -> None:
    store, clock = FakeRecordStore(), Monotonic()
    kept = _behind(store, clock)
    kept.replace(A, ISSUED, hold=ARI_MOMENT_HOLD)
    failing = store.save

    def fail(changes: object) -> None:
        raise KubeUnreachable("API server away")

    store.save = fail  # type: ignore[method-assign]
    kept.flush(force=True, final=True)
    store.save = failing  # type: ignore[method-assign]
    assert kept.unsaved() == 1
    kept.flush(force=True)  # kept, and due now
    assert store.records[A] == ISSUED and kept.unsaved() == 0


def test_not_written_behind_a_change_is_saved_at_once_even_with_a_hold() -> None:
    """`renew --once` ends after its pass: nothing waits."""
    store = FakeRecordStore()
    kept = Records(store, save_every=0)
    kept.replace(A, ISSUED, hold=ARI_MOMENT_HOLD)
    assert store.records[A] == ISSUED
