"""The budget and backoff book shared by both modes (app/budget.py) over a fake ledger and
record store: restart rebuilds it, backoff lives in the records only, replaces is exempt."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from certbotk8s.app.budget import RenewalBook, Reservation
from certbotk8s.app.records import Records
from certbotk8s.core.budget import ledger, ratelimit
from certbotk8s.core.model import DesiredCertificate, ObjectRef, SecretRef
from certbotk8s.core.renewal.backoff import FailureState
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, desired, make_config, observed_for
from tests.unit.fakes import FakeLedger, FakeRecordStore

NOW = T0 + timedelta(days=10)
REASON = Reason(ReasonCode.SECRET_MISSING, "test")


def book(store: FakeLedger, records: FakeRecordStore | None = None) -> RenewalBook:
    kept = Records(records or FakeRecordStore(), save_every=0)
    kept.load()
    return RenewalBook(make_config(), kept, store, save_every=0, jitter=lambda: 1.0)


def test_orders_and_failed_authorizations_survive_a_restart() -> None:
    store = FakeLedger()
    first = book(store)
    first.order_placed("team-a", NOW, exempt=False)
    first.order_placed("team-a", NOW, exempt=True)
    first.authz_failed(["bad.example.com"], NOW)
    restarted = book(store)
    restarted.load()
    loaded = ledger.from_json(store.values)
    assert [(o.namespace, o.exempt) for o in loaded.orders] == [("team-a", False),
                                                                ("team-a", True)]
    assert [f.identifier for f in loaded.failed_authz] == ["bad.example.com"]
    # the restarted book holds an order for an identifier that failed 5 times
    for _ in range(4):
        restarted.authz_failed(["bad.example.com"], NOW)
    d = desired("bad.example.com")
    hold = restarted.check(Action(ActionKind.ISSUE, d, REASON), None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_FAILED_AUTHZ


def test_failure_state_lives_in_the_records_whether_the_secret_exists_or_not() -> None:
    store, records = FakeLedger(), FakeRecordStore()
    b = book(store, records)
    d = desired("a.example.com")
    observed = observed_for(d)
    state = b.failed(d.secret, observed, NOW, "challenge failed", d.spec)
    assert (state.failures, state.next_attempt, state.last_error) == (
        1, NOW + timedelta(minutes=1), "challenge failed")
    assert records.records[d.secret][secret_meta.FAILURES] == "1"
    # a Secret that does not exist yet: a restart still backs off
    missing = desired("b.example.com", secret=SecretRef("default", "b-tls"))
    b.failed(missing.secret, None, NOW, "dns down", missing.spec)
    again = book(store, records)
    assert again.failure_state(missing.secret, spec=missing.spec).waiting(
        NOW + timedelta(seconds=30))
    again.succeeded(missing.secret)
    assert not book(store, records).failure_state(missing.secret, spec=None).waiting(NOW)


def test_backoff_written_on_a_tenant_secret_decides_nothing() -> None:
    """The Secret's failure annotations are a display copy: a tenant's edit neither holds
    nor frees an order."""
    d = desired("a.example.com")
    observed = observed_for(d)
    state = FailureState(9, NOW + timedelta(days=300), "forged")
    observed.recorded.update(secret_meta.failure_annotations(state, NOW))  # not the record
    assert not book(FakeLedger()).failure_state(d.secret, observed, spec=d.spec).waiting(NOW)


def test_only_an_order_that_sends_replaces_is_exempt() -> None:
    d = desired("a.example.com")
    observed = observed_for(d)
    renew = Action(ActionKind.RENEW, d, REASON)
    assert RenewalBook.sends_replaces(renew, observed)
    assert not RenewalBook.sends_replaces(Action(ActionKind.ISSUE, d, REASON), None)
    other_hosts = desired("b.example.com")  # no name in common: a new certificate
    assert not RenewalBook.sends_replaces(Action(ActionKind.RENEW, other_hosts, REASON),
                                          observed)
    other_issuer = desired("a.example.com", issuer="staging")
    assert not RenewalBook.sends_replaces(Action(ActionKind.RENEW, other_issuer, REASON),
                                          observed)


def test_a_next_attempt_written_by_a_clock_past_expiry_is_capped_when_read() -> None:
    d = desired("a.example.com")
    observed = observed_for(d)
    assert observed.certificate is not None
    not_after = observed.certificate.not_after
    now = not_after - timedelta(hours=10)
    ahead = not_after + timedelta(minutes=5)  # the writer's clock
    records = Records(FakeRecordStore(), save_every=0)
    records.update(d.secret, secret_meta.failure_annotations(
        FailureState(4, ahead + timedelta(days=1), "boom"), ahead))
    kept = RenewalBook(make_config(), records, FakeLedger(), save_every=0)
    state = kept.failure_state(d.secret, observed, now, spec=d.spec)
    assert state.next_attempt == now + timedelta(hours=1)
    assert not state.waiting(now + timedelta(hours=1))


def test_issuances_carry_their_namespace_into_the_per_domain_share() -> None:
    """Finding 3: the records' issuances are counted per namespace (the record's SecretRef),
    so a namespace that used its share of a registered domain is held and another is not."""
    records = {SecretRef("team-a", f"s{i}"): {
        secret_meta.HOSTS: f"h{i}.example.com",
        secret_meta.ISSUED_AT: secret_meta.format_time(NOW - timedelta(days=1))}
        for i in range(25)}
    b = book(FakeLedger())
    b.set_issued(records, NOW)
    mine = desired("x.example.com", secret=SecretRef("team-a", "x"))
    hold = b.check(Action(ActionKind.ISSUE, mine, REASON), None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_NAMESPACE_DOMAIN_SHARE
    theirs = desired("y.example.com", secret=SecretRef("team-b", "y"))
    assert b.check(Action(ActionKind.ISSUE, theirs, REASON), None, NOW) is None


def test_a_reservation_is_counted_from_the_check_until_the_order_is_placed() -> None:
    """`reserve` spends the budget in the step that checks it: a second reservation for the
    last slot is held. A reservation freed without an order gives the slot back; one placed
    becomes an order in flight (counted once, not twice), until it issued or ended."""
    issuer = {"directory": "https://acme.example/dir",
              "rateLimits": {"certificatesPerDomain": 2, "namespaceDomainShare": 100}}
    kept = Records(FakeRecordStore(), save_every=0)
    kept.load()
    b = RenewalBook(make_config(issuers={"le": issuer}), kept, FakeLedger(), save_every=0)
    one, two, three = (Action(ActionKind.ISSUE, desired(h, secret=SecretRef("team-a", h)),
                              REASON) for h in ("a.example.com", "b.example.com",
                                                "c.example.com"))
    first, second = b.reserve(one, None, NOW), b.reserve(two, None, NOW)
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    held = b.reserve(three, None, NOW)
    assert isinstance(held, ratelimit.Hold) and held.limit == ratelimit.LIMIT_CERTS_PER_DOMAIN
    first.end()  # no order placed: the slot is free again
    assert b.check(three, None, NOW) is None
    second.placed(NOW, exempt=False)  # an order in flight now: still one slot, not two
    second.end()  # (leaving the `with` block after the order: nothing more to free)
    assert b.check(three, None, NOW) is None
    third = b.reserve(three, None, NOW)
    assert isinstance(third, Reservation)
    hold = b.check(one, None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_CERTS_PER_DOMAIN
    b.issued("team-a", two.desired.spec.hosts, NOW, exempt=False)  # in flight -> issued
    assert b.check(one, None, NOW) is not None
    third.end()
    assert b.check(one, None, NOW) is None


def test_a_counted_order_spends_the_domain_from_placement_to_its_end() -> None:
    """One certificate left on example.com: the first order takes it while it runs, so a second
    Secret waiting for the same slot is held (the CA would refuse it when finalizing); an order
    that issued nothing gives it back; one that issued keeps it spent, though the records are
    read only once (a CronJob run)."""
    b = book(FakeLedger())
    b.set_issued({SecretRef(f"team-{i % 3}", f"s{i}"): {
        secret_meta.HOSTS: f"h{i}.example.com",
        secret_meta.ISSUED_AT: secret_meta.format_time(NOW - timedelta(days=1))}
        for i in range(49)}, NOW)
    first = desired("x.example.com", secret=SecretRef("team-x", "x"))
    second = Action(ActionKind.ISSUE, desired("y.example.com", secret=SecretRef("team-y", "y")),
                    REASON)
    assert b.check(second, None, NOW) is None
    b.order_placed("team-x", NOW, exempt=False, hosts=first.spec.hosts)
    hold = b.check(second, None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_CERTS_PER_DOMAIN
    b.order_ended("team-x", first.spec.hosts)  # failed: nothing issued
    assert b.check(second, None, NOW) is None
    b.order_placed("team-x", NOW, exempt=False, hosts=first.spec.hosts)
    b.issued("team-x", first.spec.hosts, NOW + timedelta(minutes=1), exempt=False)
    assert b.check(second, None, NOW + timedelta(minutes=2)) is not None
    # an exempt order (it sends `replaces`) spends nothing
    b2 = book(FakeLedger())
    b2.order_placed("team-x", NOW, exempt=True, hosts=first.spec.hosts)
    assert b2.check(second, None, NOW) is None


def test_istio_gateways_spend_their_own_namespaces_share_not_istio_systems() -> None:
    """Gateways of `shop` and `pay` both write into istio-system: the per-domain share is
    counted by the source's namespace (the claimant), so `shop`'s 25 certificates hold `shop`
    and not `pay` (before, both spent istio-system's one share)."""
    records = {SecretRef("istio-system", f"s{i}"): {
        secret_meta.HOSTS: f"h{i}.example.com",
        secret_meta.SOURCE: "Gateway/shop/gw",
        secret_meta.ISSUED_AT: secret_meta.format_time(NOW - timedelta(days=1))}
        for i in range(25)}
    b = book(FakeLedger())
    b.set_issued(records, NOW)

    def gateway_cert(namespace: str, host: str) -> DesiredCertificate:
        d = desired(host, secret=SecretRef("istio-system", host.split(".")[0]))
        return replace(d, source=ObjectRef("networking.istio.io/v1", "Gateway", namespace, "gw"))

    hold = b.check(Action(ActionKind.ISSUE, gateway_cert("shop", "x.example.com"), REASON),
                   None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_NAMESPACE_DOMAIN_SHARE
    assert b.check(Action(ActionKind.ISSUE, gateway_cert("pay", "y.example.com"), REASON),
                   None, NOW) is None


def test_an_order_whose_end_was_never_reported_stops_holding_its_slot_after_an_hour() -> None:
    b = book(FakeLedger())
    full = {SecretRef("team-a", f"s{i}"): {
        secret_meta.HOSTS: f"h{i}.example.com",
        secret_meta.ISSUED_AT: secret_meta.format_time(NOW - timedelta(days=1))}
        for i in range(49)}
    b.set_issued(full, NOW)
    b.order_placed("team-x", NOW, exempt=False, hosts=("x.example.com",))
    waiting = Action(ActionKind.ISSUE, desired("y.example.com"), REASON)
    assert b.check(waiting, None, NOW + timedelta(minutes=30)) is not None
    later = NOW + timedelta(hours=1)
    b.set_issued(full, later)
    assert b.check(waiting, None, later) is None
