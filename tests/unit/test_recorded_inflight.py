"""Orders in flight kept in the certificate records (app.inflight): written behind, resumed
after a restart, removed only while unchanged, and an earlier version's Secret still read."""

from __future__ import annotations

from certbotk8s.adapters.kube.inflight import InflightOrder
from certbotk8s.app.inflight import RecordedInflight
from certbotk8s.app.records import Records
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import records as rec

from .fakes import FakeRecordStore

REF = SecretRef("team-a", "web-tls")
ORDER = InflightOrder(REF, "https://ca.test/order/1", ("a.example.com", "b.example.com"))


class LegacyStore:
    """The Secret `certbotk8s-inflight-orders` of an earlier version, in memory."""

    def __init__(self, *orders: InflightOrder) -> None:
        self.orders = {o.secret: o for o in orders}
        self.cleared: list[SecretRef] = []

    def load(self) -> dict[SecretRef, InflightOrder]:
        return dict(self.orders)

    def record(self, order: InflightOrder) -> None:
        self.orders[order.secret] = order

    def clear(self, ref: SecretRef) -> None:
        self.cleared.append(ref)
        self.orders.pop(ref, None)

    def remove_if_unchanged(self, order: InflightOrder) -> bool:
        return self.orders.pop(order.secret, None) is not None


def _behind(store: FakeRecordStore) -> Records:
    return Records(store, write_behind=True)


def test_an_order_that_ends_before_the_flush_costs_no_write_of_its_own() -> None:
    store = FakeRecordStore()
    records = _behind(store)
    inflight = RecordedInflight(records)
    inflight.record(ORDER)
    assert inflight.load() == {REF: ORDER}
    assert store.saves == 0  # nothing written on the order's thread
    # The order ends: its certificate's record replaces the whole record (orders.store).
    records.replace(REF, {"certbotk8s.io/hosts": "a.example.com,b.example.com"})
    inflight.clear(REF)
    records.flush(force=True)
    assert store.saves == 1  # the certificate's record, which is written anyway
    assert store.records == {REF: {"certbotk8s.io/hosts": "a.example.com,b.example.com"}}
    assert inflight.load() == {}


def test_an_order_running_at_the_flush_is_resumed_by_the_next_process() -> None:
    store = FakeRecordStore()
    records = _behind(store)
    records.update(REF, {"certbotk8s.io/hosts": "a.example.com"})  # an existing record
    RecordedInflight(records).record(ORDER)
    records.flush(force=True)  # the periodic flush; then the process is killed
    after_crash = _behind(store)
    assert after_crash.load()
    assert RecordedInflight(after_crash).load() == {REF: ORDER}
    # The rest of the record is untouched, and clearing leaves it as it was.
    RecordedInflight(after_crash).clear(REF)
    assert after_crash.get(REF) == {"certbotk8s.io/hosts": "a.example.com"}


def test_a_cleared_order_of_a_secret_with_no_other_record_leaves_no_record() -> None:
    store = FakeRecordStore()
    records = _behind(store)
    inflight = RecordedInflight(records)
    inflight.record(ORDER)
    records.flush(force=True)
    inflight.clear(REF)
    records.flush(force=True)
    assert store.records == {} and len(records) == 0


def test_the_sweep_removes_an_entry_only_while_it_names_the_order_read() -> None:
    records = _behind(FakeRecordStore())
    inflight = RecordedInflight(records)
    inflight.record(ORDER)
    read = inflight.load()[REF]
    newer = InflightOrder(REF, "https://ca.test/order/2", ORDER.hosts)
    inflight.record(newer)  # an order placed meanwhile
    assert not inflight.remove_if_unchanged(read)
    assert inflight.load() == {REF: newer}
    assert inflight.remove_if_unchanged(inflight.load()[REF])
    assert inflight.load() == {}
    assert rec.ORDER_URL not in records.get(REF)


def test_orders_an_earlier_version_recorded_are_resumed_and_cleared_there() -> None:
    other = SecretRef("team-b", "api-tls")
    old = InflightOrder(other, "https://ca.test/order/9", ("api.example.com",))
    stale = InflightOrder(REF, "https://ca.test/order/0", ORDER.hosts)
    legacy = LegacyStore(old, stale)
    inflight = RecordedInflight(_behind(FakeRecordStore()), legacy=legacy)
    inflight.record(ORDER)
    loaded = inflight.load()
    assert loaded == {other: old, REF: ORDER}  # a record wins over the old Secret's entry
    inflight.clear(other)
    assert legacy.cleared == [other]
    assert inflight.remove_if_unchanged(loaded[REF])  # from the records
    inflight.clear(REF)  # the old Secret's entry for it goes with the order's end
    assert legacy.orders == {}
