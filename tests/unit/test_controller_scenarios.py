"""Controller scenarios over in-memory fakes (tests/unit/cluster.py): claims, races, backoff,
write conflicts, isolation, restarts, leadership, shared orders and rate-limit holds, through the
real Reconciler and OrderRunner."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.app.commands import force
from certbotk8s.core.errors import AcmeProblemError, ChallengeFailed, KubeUnreachable, Problem
from certbotk8s.core.model import KeyType, SecretRef
from certbotk8s.core.pki import certs
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.state import records as rec
from certbotk8s.core.state import secret_meta

from . import hostile
from .cluster import FakeController, World
from .factories import ingress, istio_gateway, istio_server, make_config, tls_entry

START = datetime(2025, 3, 1, tzinfo=UTC)
SHOP = "shop.example.com"
A, B = SecretRef("team-a", "shop-tls"), SecretRef("team-b", "shop-tls")


def _world() -> World:
    return World(make_config(), START)


def _add(world: World, namespace: str, host: str, secret: str = "shop-tls",
         name: str = "shop", age: timedelta = timedelta(0)) -> SecretRef:
    world.cluster.add_ingress(ingress(name, namespace, tls=[tls_entry(secret, host)]),
                              world.clock() - age)
    return SecretRef(namespace, secret)


def _reasons(world: World, namespace: str) -> list[str]:
    return [reason for obj, _, reason, _ in world.events.posted if obj.namespace == namespace]


def _force_renewal(world: World, ref: SecretRef) -> None:
    world.clock.advance(timedelta(hours=2))
    force.request_renewal(world.cluster, ref, world.clock())
    world.clock.advance(timedelta(seconds=1))


def _claimed(world: World) -> World:
    """team-b's Ingress is a second older than team-a's; both appear before the first pass."""
    _add(world, "team-a", SHOP)
    _add(world, "team-b", SHOP, age=timedelta(seconds=1))
    return world


# -- (a) two namespaces claim one new host at the same moment ----------------------------------


def test_simultaneous_claims_one_winner_which_keeps_renewing() -> None:
    world = _claimed(_world())
    controller = FakeController(world)
    controller.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.writes == [B]  # the older source
    assert "HostClaimed" in _reasons(world, "team-a")
    assert _reasons(world, "team-b") == ["Issued"]
    first = world.cluster.serial(B)

    _force_renewal(world, B)
    controller.settle()
    assert world.acme.orders == [(SHOP,), (SHOP,)]
    assert world.cluster.writes == [B, B]
    assert world.cluster.serial(B) != first
    assert _reasons(world, "team-b") == ["Issued", "Renewed"]
    assert world.cluster.serial(A) is None
    assert A not in controller.records.snapshot()


def test_simultaneous_claims_with_the_same_creation_time_are_decided_by_name() -> None:
    world = _world()
    _add(world, "team-b", SHOP)
    _add(world, "team-a", SHOP)
    FakeController(world).settle()
    assert world.cluster.writes == [A]
    assert "HostClaimed" in _reasons(world, "team-b")


# -- (b) a failed order backs off, from the records only ----------------------------------------


def _issued(world: World) -> tuple[FakeController, SecretRef]:
    ref = _add(world, "team-a", SHOP)
    controller = FakeController(world)
    controller.settle()
    assert world.cluster.writes == [ref]
    return controller, ref


@pytest.mark.parametrize("error", [
    ChallengeFailed(SHOP, "http-01", Problem("urn:ietf:params:acme:error:unauthorized",
                                             "404 for the token", SHOP)),
    AcmeProblemError("order refused", Problem("urn:ietf:params:acme:error:rejectedIdentifier")),
], ids=["challenge-failed", "problem"])
def test_a_failed_order_backs_off_and_the_tenant_cannot_change_that(error: Exception) -> None:
    world = _world()
    controller, ref = _issued(world)
    serial = world.cluster.serial(ref)
    world.acme.fail(SHOP, error)
    _force_renewal(world, ref)
    controller.settle()
    assert len(world.acme.orders) == 2
    assert world.cluster.serial(ref) == serial  # the old certificate stays
    assert "IssuanceFailed" in _reasons(world, "team-a")
    record = controller.records.get(ref)
    assert record[secret_meta.FAILURES] == "1"
    next_attempt = secret_meta.parse_time(record[secret_meta.NEXT_ATTEMPT])
    assert next_attempt is not None and next_attempt > world.clock()
    assert controller.scheduled()[ref] == next_attempt
    stored = world.cluster.read(ref.namespace, ref.name)
    assert stored is not None and secret_meta.NEXT_ATTEMPT not in stored.annotations

    # The tenant "clears" the backoff on its Secret: nothing changes.
    world.cluster.edit_annotations(ref, {secret_meta.FAILURES: "0",
                                         secret_meta.NEXT_ATTEMPT: "2000-01-01T00:00:00Z",
                                         secret_meta.LAST_ERROR: None})
    controller.settle()
    assert len(world.acme.orders) == 2
    assert controller.records.get(ref)[secret_meta.NEXT_ATTEMPT] == \
        record[secret_meta.NEXT_ATTEMPT]

    # ... or pushes it far out: the order still goes when the records say.
    world.cluster.edit_annotations(ref, {secret_meta.FAILURES: "99",
                                         secret_meta.NEXT_ATTEMPT: "9999-12-31T23:59:59-23:59"})
    world.acme.heal()
    world.clock.now = next_attempt + timedelta(seconds=1)
    controller.settle()
    assert len(world.acme.orders) == 3
    assert world.cluster.serial(ref) != serial
    assert secret_meta.FAILURES not in controller.records.get(ref)


def test_a_first_issuance_that_fails_backs_off_without_a_secret() -> None:
    world = _world()
    ref = _add(world, "team-a", SHOP)
    world.acme.fail(SHOP, ChallengeFailed(SHOP, "http-01", Problem("urn:x:unauthorized")))
    controller = FakeController(world)
    controller.settle()
    controller.settle()
    assert len(world.acme.orders) == 1  # the second pass waits for the backoff
    assert world.cluster.read(ref.namespace, ref.name) is None
    assert controller.records.get(ref)[secret_meta.FAILURES] == "1"


# -- (c) a 409 on the Secret write ---------------------------------------------------------------


def test_a_conflicting_edit_is_met_by_writing_again_on_the_fresh_version() -> None:
    world = _world()
    controller, ref = _issued(world)
    serial = world.cluster.serial(ref)

    def tenant_edits(target: SecretRef) -> None:
        world.cluster.before_write = None  # once
        world.cluster.edit_annotations(target, {"team-a.example/owner": "web team"})

    world.cluster.before_write = tenant_edits
    _force_renewal(world, ref)
    controller.settle()
    assert world.cluster.conflicts == 1
    assert len(world.acme.orders) == 2
    stored = world.cluster.read(ref.namespace, ref.name)
    assert stored is not None and stored.annotations["team-a.example/owner"] == "web team"
    assert world.cluster.serial(ref) not in (None, serial)
    assert controller.records.get(ref)[secret_meta.SERIAL] == world.cluster.serial(ref)
    assert _reasons(world, "team-a")[-1] == "Renewed"


def test_a_newer_certificate_from_another_writer_is_kept() -> None:
    world = _world()
    controller, ref = _issued(world)
    theirs = world.acme.certificate([SHOP])

    def cronjob_writes(target: SecretRef) -> None:
        world.cluster.before_write = None
        old = world.cluster.read(target.namespace, target.name)
        assert old is not None
        world.cluster.put_secret(hostile.stored_secret(
            target.namespace, target.name, theirs.fullchain_pem, theirs.key_pem,
            annotations={secret_meta.SERIAL: theirs.info.serial}))

    world.cluster.before_write = cronjob_writes
    _force_renewal(world, ref)
    controller.settle()
    assert world.cluster.conflicts == 1
    assert world.cluster.serial(ref) == theirs.info.serial
    assert controller.metrics.newer_certificate_kept._value.get() == 1
    assert len(world.acme.orders) == 2  # and no further order for it


def test_a_secret_taken_over_meanwhile_is_not_overwritten() -> None:
    world = _world()
    controller, ref = _issued(world)

    def taken_over(target: SecretRef) -> None:
        world.cluster.before_write = None
        world.cluster.put_secret(hostile.stored_secret(
            target.namespace, target.name, hostile.good_pem(SHOP), hostile.leaf_key_pem(),
            managed=False))

    world.cluster.before_write = taken_over
    _force_renewal(world, ref)
    controller.settle()
    assert world.cluster.conflicts == 1
    assert world.cluster.writes == [ref]  # only the first issuance
    assert "IssuanceFailed" in _reasons(world, "team-a")


# -- (d) isolation ---------------------------------------------------------------------------------


def test_a_hostile_secret_does_not_stop_another_certificate_in_the_same_pass() -> None:
    world = _world()
    bad = _add(world, "team-bad", "bad.example.com", secret="bad-tls", name="bad")
    world.cluster.put_secret(hostile.stored_secret(bad.namespace, bad.name,
                                                   hostile.duplicate_san_pem(),
                                                   hostile.leaf_key_pem()))
    victim = _add(world, "victim", "victim.example.com", secret="victim-tls", name="web")
    controller = FakeController(world)
    controller.reconcile()
    assert world.cluster.serial(victim) is not None
    assert _reasons(world, "victim") == ["Issued"]


@pytest.mark.parametrize("break_it", ["engine", "read"])
def test_a_certificate_whose_order_raises_does_not_stop_another(break_it: str) -> None:
    world = _world()
    # "boom" sorts first: its order runs before the victim's in the same pass.
    boom = _add(world, "aaa-boom", "boom.example.com", secret="boom-tls", name="boom")
    victim = _add(world, "victim", "victim.example.com", secret="victim-tls", name="web")
    if break_it == "engine":
        world.acme.fail("boom.example.com", RuntimeError("a bug in the engine"))
    else:
        world.cluster.broken_reads[boom] = KeyError("a bug in the adapter")
    controller = FakeController(world)
    controller.reconcile()
    assert world.cluster.serial(victim) is not None
    assert world.cluster.serial(boom) is None
    assert ("victim.example.com",) in world.acme.orders
    # Reported at that certificate, and backed off: no new CA order at every pass.
    assert _reasons(world, "aaa-boom") == ["InternalError"]
    assert controller.metrics.certificate_errors._value.get() == 1
    assert controller.records.get(boom)[secret_meta.FAILURES] == "1"
    ordered = len(world.acme.orders)
    controller.settle()
    assert len(world.acme.orders) == ordered


# -- (e) restart -----------------------------------------------------------------------------------


def test_a_restarted_controller_orders_nothing_twice_and_keeps_the_claim() -> None:
    world = _claimed(_world())
    FakeController(world).settle()
    assert world.cluster.writes == [B]
    world.events.posted.clear()

    again = FakeController(world).restart()
    again.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.writes == [B]
    assert "HostClaimed" in _reasons(world, "team-a")


def test_the_holder_keeps_its_host_when_its_source_is_recreated_in_the_grace_period() -> None:
    world = _claimed(_world())
    first = FakeController(world)
    first.settle()
    world.clock.advance(timedelta(minutes=10))
    world.cluster.delete_ingress("team-b", "shop")
    first.settle()  # the claim starts its grace period
    assert rec.RELEASED_AT in first.records.get(B)
    world.clock.advance(timedelta(minutes=10))
    _add(world, "team-b", SHOP)  # now the younger source
    world.events.posted.clear()

    restarted = first.restart()
    restarted.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.writes == [B]
    assert "HostClaimed" in _reasons(world, "team-a")
    assert rec.RELEASED_AT not in restarted.records.get(B)


def test_a_crash_before_the_records_were_saved_costs_no_second_order() -> None:
    world = _world()
    _controller, ref = _issued(world)  # killed: its records never flushed
    world.store.records.clear()
    restarted = FakeController(world)
    restarted.settle()
    assert len(world.acme.orders) == 1
    assert restarted.records.get(ref).get(secret_meta.SERIAL) == world.cluster.serial(ref)


# -- (f) leadership ----------------------------------------------------------------------------


def test_no_orders_and_no_events_while_not_leading() -> None:
    world = _claimed(_world())
    world.leader.leading = False
    controller = FakeController(world)
    controller.settle()
    assert world.acme.orders == []
    assert world.cluster.writes == []
    assert world.events.posted == []

    world.leader.leading = True
    controller.settle()
    assert world.cluster.writes == [B]


def test_the_lead_lost_during_an_order_leaves_the_certificate_for_later() -> None:
    world = _world()
    ref = _add(world, "team-a", SHOP)
    controller = FakeController(world)

    def lose_lead() -> None:
        world.acme.during_order = None
        world.leader.leading = False

    world.acme.during_order = lose_lead
    controller.settle()
    assert len(world.acme.orders) == 1
    assert world.cluster.writes == []

    world.leader.leading = True
    controller.settle()
    assert world.cluster.writes == [ref]
    assert len(world.acme.orders) == 1  # the certificate issued earlier, not a new order


def test_a_write_the_api_server_never_answered_is_retried_without_a_new_order() -> None:
    world = _world()
    ref = _add(world, "team-a", SHOP)
    controller = FakeController(world)

    def api_away(target: SecretRef) -> None:
        world.cluster.before_write = None
        raise KubeUnreachable("connection refused")

    world.cluster.before_write = api_away
    controller.settle()
    assert len(world.acme.orders) == 1
    assert world.cluster.writes == []
    retry = controller.scheduled()[ref]
    world.clock.now = retry
    controller.settle()
    assert world.cluster.writes == [ref]
    assert len(world.acme.orders) == 1


def test_after_a_restart_every_wanted_certificate_has_its_ari_windows_read() -> None:
    """The ARI refresher asks the CA about the Secrets that have a state: a restarted controller
    must give one to a certificate it did not order itself (else no ARI window is ever read for
    it and a moved window is missed; seen in the compressed-time lab run)."""
    world = _world()
    ref = _add(world, "team-a", SHOP)
    first = FakeController(world)
    first.settle()
    assert world.cluster.serial(ref) is not None
    restarted = first.restart()
    restarted.reconcile()
    assert restarted.states.get(ref) is not None


# -- (h) migrating from cert-manager: adopted, not re-issued; another CA's reported --------------


CM_LABELS = {"controller.cert-manager.io/fao": "true"}
CM_ANNOTATIONS = {"cert-manager.io/issuer-name": "letsencrypt-prod",
                  "cert-manager.io/issuer-kind": "ClusterIssuer"}


def _migrating_world() -> World:
    # ARI refresh reads only certificates valid by the wall clock: the world starts now.
    now = datetime.now(UTC).replace(microsecond=0)
    return World(make_config(migration={"certManagerIssuers": {"letsencrypt-prod": "le"}}), now)


def _cert_manager_secret(world: World, ref: SecretRef, fullchain: bytes, key: bytes) -> None:
    world.cluster.put_secret(StoredSecret(
        ref.namespace, ref.name, "1", "kubernetes.io/tls", labels=dict(CM_LABELS),
        annotations=dict(CM_ANNOTATIONS), data={"tls.crt": fullchain, "tls.key": key}))
    world.cluster.add_ingress(ingress("shop", ref.namespace, annotations={
        "cert-manager.io/cluster-issuer": "letsencrypt-prod"},
        tls=[tls_entry(ref.name, SHOP)]), world.clock())


def test_controller_adopts_a_cert_manager_secret_and_renews_it_with_replaces() -> None:
    world = _migrating_world()
    theirs = world.acme.certificate([SHOP], OrderRequest(hosts=(SHOP,),
                                                         key_type=KeyType.RSA_2048))
    _cert_manager_secret(world, A, theirs.fullchain_pem, theirs.key_pem)
    controller = FakeController(world)
    controller.settle()
    controller.ari.refresh()  # the CA knows the certificate: adopted
    controller.settle()
    assert world.acme.orders == []  # RSA kept: no KeyTypeChanged, no order at all
    assert world.cluster.serial(A) == theirs.info.serial
    assert controller.records.get(A)[secret_meta.ISSUER] == "le"
    # the normal renewal, in the CA's window: names the adopted certificate in `replaces`
    world.clock.advance(timedelta(days=61))
    controller.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.acme.replaces == [theirs.info.ari_cert_id]
    renewed = world.cluster.read(A.namespace, A.name)
    assert renewed is not None
    assert certs.certificate_info(renewed.data["tls.crt"]).key_type is KeyType.ECDSA_P256


def test_controller_reports_and_replaces_another_cas_certificate() -> None:
    world = _migrating_world()
    now = world.clock()
    other_ca = hostile.pem_of(hostile.leaf_key().public_key(), hosts=(SHOP,),
                              not_before=now - timedelta(days=1),
                              not_after=now + timedelta(days=80))
    _cert_manager_secret(world, A, other_ca, hostile.leaf_key_pem())
    controller = FakeController(world)
    controller.settle()
    assert world.acme.orders == []  # not yet asked: kept meanwhile
    controller.ari.refresh()  # the CA: 404
    controller.settle()
    assert world.acme.orders == [(SHOP,)] and world.acme.replaces == [None]
    warned = [m for obj, type_, reason, m in world.events.posted
              if (type_, reason) == ("Warning", "ForeignCertificate")]
    assert warned and "hostile test CA" in warned[0]
    assert "'letsencrypt-prod' (not verified)" in warned[0]


# -- (g) one order for one host set, and the rate-limit budget ----------------------------------


def _shared_by_two_workers(world: World, fails: Exception | None = None,
                           ) -> tuple[FakeController, SecretRef, SecretRef]:
    """Two Secrets of one namespace want the same certificate and two workers take their keys
    together: the second key's worker finds the first's order running and waits for it. The
    order then succeeds, or raises `fails`."""
    one = _add(world, "team-a", SHOP, secret="one-tls", name="one")
    two = _add(world, "team-a", SHOP, secret="two-tls", name="two")
    joined, release = threading.Event(), threading.Event()

    def in_flight() -> None:  # the order stays in flight until told
        _wait(release)
        if fails is not None:
            raise fails

    world.acme.during_order = in_flight
    controller = FakeController(world, on_shared=lambda ref: joined.set())
    controller.pass_only()
    workers = [threading.Thread(target=controller.work_one, args=(30,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    assert joined.wait(30)
    release.set()
    for worker in workers:
        worker.join(30)
    world.acme.during_order = None
    return controller, one, two


def test_the_same_host_set_from_two_sources_in_flight_together_is_ordered_once() -> None:
    world = _world()
    controller, one, two = _shared_by_two_workers(world)
    controller.settle()
    assert world.acme.orders == [(SHOP,)]
    assert sorted(world.cluster.writes) == sorted([one, two])
    first, second = (world.cluster.read(r.namespace, r.name) for r in (one, two))
    assert first is not None and second is not None
    assert first.data["tls.crt"] == second.data["tls.crt"]


def test_a_shared_order_that_fails_backs_off_both_secrets() -> None:
    world = _world()
    controller, one, two = _shared_by_two_workers(
        world, ChallengeFailed(SHOP, "http-01", Problem("urn:x:unauthorized")))
    controller.settle()  # both back off: no second order
    assert world.acme.orders == [(SHOP,)] and world.cluster.writes == []
    assert [controller.records.get(ref)[secret_meta.FAILURES] for ref in (one, two)] == [
        "1", "1"]
    assert set(controller.scheduled()) == {one, two}


def _wait(event: threading.Event) -> None:
    assert event.wait(30)  # a safety valve only: the test sets it once the other worker waits


def test_a_key_changed_while_its_order_runs_is_handed_out_again_only_after_it() -> None:
    """A pass during an order queues that certificate's key again: no second worker gets it
    while the order runs; once it is done the key comes back once, finds the certificate
    written, and orders nothing more."""
    world = _world()
    ref = _add(world, "team-a", SHOP)
    ordering, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        ordering.set()
        _wait(release)

    world.acme.during_order = in_flight
    controller = FakeController(world)
    controller.pass_only()
    worker = threading.Thread(target=controller.work_one, args=(30,))
    worker.start()
    assert ordering.wait(30)
    controller.pass_only()  # an event meanwhile: the key is queued again (dirty)
    assert controller.queue.processing() == {ref}
    assert len(controller.queue) == 0  # not handed to a second worker
    release.set()
    worker.join(30)
    world.acme.during_order = None
    assert len(controller.queue) == 1  # back once the order is done
    assert controller.work_one() == ref
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.writes == [ref]


def test_a_used_up_registered_domain_budget_holds_the_order_with_an_event() -> None:
    issuer = {"directory": "https://acme.example/dir",
              "rateLimits": {"certificatesPerDomain": 1}}
    world = World(make_config(issuers={"le": issuer}), START)
    controller = FakeController(world)
    _add(world, "team-a", SHOP)
    controller.settle()
    held = _add(world, "team-a", "www.example.com", secret="www-tls", name="www")
    controller.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.read(held.namespace, held.name) is None
    holds = [message for obj, _, reason, message in world.events.posted
             if reason == "RateLimitHold" and obj.name == "www"]
    assert holds and "registered domain example.com" in holds[0]
    assert "possible at" in holds[0]
    gauge = controller.metrics.rate_limit_holds.labels("certificates-per-registered-domain")
    assert gauge._value.get() == 1


def test_n_free_slots_of_a_registered_domain_are_n_orders_with_several_workers() -> None:
    """Issue 19's leftover in the controller: 4 workers take 6 due certificates of one
    registered domain with 3 slots left. The budget is reserved in the step that checks it
    (RenewalBook.reserve), so exactly 3 orders go (before, each worker's check saw the
    issuances of the pass's start: all 6 went), and the other 3 are held with an Event."""
    issuer = {"directory": "https://acme.example/dir",
              "rateLimits": {"certificatesPerDomain": 3, "namespaceDomainShare": 100}}
    world = World(make_config(issuers={"le": issuer}), START)
    for n in range(6):
        _add(world, "team-a", f"h{n}.example.com", secret=f"h{n}-tls", name=f"h{n}")
    meet = threading.Barrier(3)  # the three orders are in flight together

    def in_flight() -> None:
        meet.wait(30)  # a safety valve only: the other two are placed meanwhile

    world.acme.during_order = in_flight
    controller = FakeController(world)
    controller.pass_only()

    def worker() -> None:
        while controller.work_one() is not None:
            pass

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert len(world.acme.orders) == 3
    assert len(world.cluster.writes) == 3
    holds = [obj.name for obj, _, reason, _ in world.events.posted if reason == "RateLimitHold"]
    assert len(holds) == 3


def test_a_key_back_before_the_cache_shows_its_write_waits_for_the_watch_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after its order a certificate's key can come back (a pass queued it meanwhile)
    while the informer cache still shows the Secret as it was: it waits for the watch event
    instead of reading the Secret again to find the certificate there; then it is scheduled."""
    world = _world()
    ref = _add(world, "team-a", SHOP)
    controller = FakeController(world)
    controller.reconcile()
    assert world.cluster.writes == [ref]
    cached = controller.watch.observed
    monkeypatch.setattr(controller.watch, "observed",
                        lambda r: None if r == ref else cached(r))  # the cache lags
    world.cluster.broken_reads[ref] = AssertionError("read the Secret again")
    controller.queue.add(ref)
    assert controller.work_one() == ref
    assert "InternalError" not in _reasons(world, "team-a")  # no read, no order
    waits_until = controller.scheduled()[ref]  # back at the latest when the wait ends
    assert world.clock() < waits_until <= world.clock() + timedelta(seconds=30)
    monkeypatch.setattr(controller.watch, "observed", cached)  # the watch event arrives
    controller.queue.add(ref)
    assert controller.work_one() == ref
    assert len(world.acme.orders) == 1
    assert controller.scheduled()[ref] > world.clock() + timedelta(days=1)  # its renewal


def test_one_pass_spends_a_namespaces_share_of_a_domain_once() -> None:
    """One worker, orders one after another in one pass: each check sees the orders before it
    (reserved), not only the issuances the pass started with. 30 new certificates of one
    namespace under example.com, whose share is 25 (half of 50): 25 orders, 5 held (on the
    earlier code: 30 orders)."""
    world = _world()
    for n in range(30):
        _add(world, "team-a", f"h{n}.example.com", secret=f"h{n}-tls", name=f"h{n}")
    controller = FakeController(world)
    controller.reconcile()
    assert len(world.acme.orders) == 25
    holds = [message for obj, _, reason, message in world.events.posted
             if reason == "RateLimitHold"]
    assert len(holds) == 5 and all("team-a used its share (25)" in m for m in holds)


# -- Istio Gateways of two namespaces writing into istio-system --------------------------------


def _gateway(world: World, namespace: str, credential: str, age: timedelta) -> SecretRef:
    servers = [istio_server(SHOP, credential=credential)]
    world.cluster.add_ingress(istio_gateway("gw", namespace, servers=servers),
                              world.clock() - age)
    return SecretRef("istio-system", credential)


def _istio_world(**tenants: object) -> World:
    return World(make_config(istio={"allowedSourceNamespaces": ["shop", "pay"]},
                             tenants=tenants), START)


def test_two_namespaces_gateways_naming_one_credential_get_one_certificate_for_one() -> None:
    """Finding 8: `pay`'s Gateway names the `credentialName` `shop`'s (older) Gateway uses:
    one certificate is issued, for `shop`; `pay` is told why, and renewals stay `shop`'s."""
    world = _istio_world()
    web = _gateway(world, "shop", "web", age=timedelta(seconds=1))
    _gateway(world, "pay", "web", age=timedelta(0))
    controller = FakeController(world)
    controller.settle()
    assert world.acme.orders == [(SHOP,)]
    assert world.cluster.writes == [web]
    assert _reasons(world, "shop") == ["Issued"]
    assert _reasons(world, "pay") == ["HostClaimed"]
    record = controller.records.snapshot()[web]
    assert record[secret_meta.SOURCE] == "Gateway/shop/gw"


def test_two_namespaces_gateways_with_shared_hosts_never_share_an_order_or_a_key() -> None:
    """With `tenants.shareHosts`, `shop` and `pay` may both have the host, each in its own
    Secret in istio-system: worked on together they are two orders and two keys (the order
    key was the Secret's namespace and the spec, so one key went into both Secrets)."""
    world = _istio_world(shareHosts=True)
    shop = _gateway(world, "shop", "shop-web", age=timedelta(0))
    pay = _gateway(world, "pay", "pay-web", age=timedelta(0))
    meet = threading.Barrier(2)  # both orders in flight together, on two workers

    def in_flight() -> None:
        meet.wait(30)  # a safety valve only: the other order is placed meanwhile

    world.acme.during_order = in_flight
    controller = FakeController(world)
    controller.pass_only()
    workers = [threading.Thread(target=controller.work_one, args=(30,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    world.acme.during_order = None
    controller.settle()
    assert world.acme.orders == [(SHOP,), (SHOP,)]
    assert sorted(world.cluster.writes) == sorted([shop, pay])
    keys = [world.cluster.secrets[r].data["tls.key"] for r in (shop, pay)]
    assert keys[0] != keys[1]


# -- a host change that cannot be served yet --------------------------------------------------


def test_a_host_change_that_keeps_failing_renews_the_names_held_when_they_are_due() -> None:
    """The tenant adds a name whose DNS does not point here yet: every order for the new set
    fails. The certificate the Secret holds must not run out meanwhile: once it is due it is
    renewed for its own names, with `replaces`, and the host change goes on backing off."""
    world = _world()
    controller, ref = _issued(world)
    new = "new.example.com"
    world.acme.fail(new, ChallengeFailed(new, "http-01", Problem(
        "urn:ietf:params:acme:error:dns", "no such host", new)))
    world.cluster.add_ingress(ingress("shop", "team-a", tls=[tls_entry("shop-tls", SHOP, new)]),
                              START)
    controller.settle()
    both = tuple(sorted((SHOP, new)))
    assert world.acme.orders[-1] == both  # the host change, failed
    held = world.cluster.read(ref.namespace, ref.name)
    assert held is not None
    old = certs.certificate_info(held.data["tls.crt"])
    world.clock.now = START + timedelta(days=62)  # past 2/3 of the 90 days: due on its own
    controller.settle()
    renewed = [i for i, hosts in enumerate(world.acme.orders) if hosts == (SHOP,)]
    assert len(renewed) == 2  # the first issuance and the renewal of the names held
    assert world.acme.replaces[renewed[-1]] == old.ari_cert_id
    stored = world.cluster.read(ref.namespace, ref.name)
    assert stored is not None
    info = certs.certificate_info(stored.data["tls.crt"])
    assert info.sans == (SHOP,) and info.not_after > old.not_after
    assert world.acme.orders[-1] == both  # and the host change tried again


def test_the_last_slot_is_spent_by_the_check_not_only_by_the_order_placed() -> None:
    """One slot left on example.com; worker 1 passed its budget check and has not yet created
    its order at the CA when worker 2 checks. The check reserved the slot (RenewalBook.reserve),
    so worker 2 is held. When the check and the placement were two steps, both went: the CA
    would refuse one of them when finalizing."""
    issuer = {"directory": "https://acme.example/dir",
              "rateLimits": {"certificatesPerDomain": 1, "namespaceDomainShare": 100}}
    world = World(make_config(issuers={"le": issuer}), START)
    one = _add(world, "team-a", "one.example.com", secret="one-tls", name="one")
    _add(world, "team-a", "two.example.com", secret="two-tls", name="two")
    arrived, go = threading.Event(), threading.Event()

    def before_order() -> None:  # the first order waits here, before the CA creates it
        if not arrived.is_set():
            arrived.set()
            _wait(go)

    world.acme.before_order = before_order
    controller = FakeController(world)
    controller.pass_only()
    first = threading.Thread(target=controller.work_one, args=(30,))
    first.start()
    assert arrived.wait(30)
    assert controller.work_one() is not None  # worker 2, meanwhile
    go.set()
    first.join(30)
    assert world.acme.orders == [("one.example.com",)]
    assert world.cluster.writes == [one]
    assert [obj.name for obj, _, reason, _ in world.events.posted
            if reason == "RateLimitHold"] == ["two"]

