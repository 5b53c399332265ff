"""A host change the rate-limit budget holds (core/renewal/interim.py, RenewalBook.admit): the
Secret's certificate is renewed for the names it holds, with `replaces`, once it is due on its
own, and the host change is ordered when the budget allows; before that the hold ends no later
than that moment."""

from __future__ import annotations

from datetime import datetime, timedelta

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.records import Records
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.model import ObservedSecret, SecretRef
from certbotk8s.core.renewal.interim import interim_renewal
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.renewal.policy import renewal_time_of
from certbotk8s.core.renewal.reasons import ReasonCode
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, cert_info, desired, make_config, observed_for
from tests.unit.fakes import FakeLedger, FakeRecordStore

DAY = timedelta(days=1)
REF = SecretRef("team-a", "web-tls")
OLD = desired("a.example.com", secret=REF)


def _held_host_change(age: timedelta, *hosts: str) -> tuple[Action, ObservedSecret]:
    """The Secret holds a 90-day certificate for a.example.com, `age` old; its source now
    wants `hosts` (a host change, due at once)."""
    seen = observed_for(OLD, cert_info("a.example.com", not_before=T0))
    wanted = desired(*hosts, secret=REF)
    action = plan([wanted], {REF: seen}, T0 + age, {})[0]
    assert action.kind is ActionKind.RENEW and action.reason.code is ReasonCode.HOSTS_CHANGED
    return action, seen


def _busy_domain_book(now: datetime) -> RenewalBook:
    """example.com has spent its 50 counted certificates of the last 7 days (other Secrets)."""
    records = Records(FakeRecordStore(), save_every=0)
    book = RenewalBook(make_config(), records, FakeLedger(), save_every=0, jitter=lambda: 1.0)
    issued = {SecretRef(f"team-{i % 9}", f"s{i}"): {
        secret_meta.HOSTS: f"h{i}.example.com",
        secret_meta.ISSUED_AT: secret_meta.format_time(now - DAY)}
        for i in range(50)}
    book.set_issued(issued, now)
    return book


def test_a_held_host_change_renews_the_names_held_once_they_are_due() -> None:
    now = T0 + 70 * DAY  # past 2/3 of the 90 days: the certificate held is due on its own
    action, seen = _held_host_change(70 * DAY, "b.example.com")  # no name shared
    book = _busy_domain_book(now)
    hold = book.check(action, seen, now)
    assert hold is not None and hold.limit == ratelimit.LIMIT_CERTS_PER_DOMAIN
    placed, left = book.admit(action, seen, now)
    assert left is None
    assert placed.kind is ActionKind.RENEW and placed.desired.spec.hosts == ("a.example.com",)
    assert placed.reason.code is ReasonCode.EXPIRING_LIFETIME_FRACTION
    assert "waits for the rate-limit budget" in placed.reason.message
    # it names the certificate held: exempt from the CA's limits, so the budget lets it go
    assert seen.certificate is not None
    assert replaced_cert_id(True, placed.desired, seen) == seen.certificate.ari_cert_id
    assert book.check(placed, seen, now) is None
    # everything else stays as the source asks
    assert placed.desired.source == action.desired.source
    assert placed.desired.spec.issuer == action.desired.spec.issuer


def test_before_the_names_held_are_due_the_hold_ends_at_their_moment() -> None:
    now = T0 + 59 * DAY  # a day before 2/3 of the 90 days
    action, seen = _held_host_change(59 * DAY, "b.example.com")
    book = _busy_domain_book(now)
    placed, hold = book.admit(action, seen, now)
    assert placed is action and hold is not None
    assert seen.certificate is not None
    due = renewal_time_of(OLD, seen.certificate, None, seen.recorded).at
    budget = book.check(action, seen, now)
    assert budget is not None and hold.until == min(due, budget.until)
    assert hold.until == due == T0 + 60 * DAY  # the domain's budget refills 6 days later
    assert "renews for its own names meanwhile" in hold.message


def test_a_host_change_the_budget_lets_go_is_ordered_as_it_is() -> None:
    now = T0 + 70 * DAY
    action, seen = _held_host_change(70 * DAY, "b.example.com")
    book = RenewalBook(make_config(), Records(FakeRecordStore(), save_every=0), FakeLedger(),
                       save_every=0)
    assert book.admit(action, seen, now) == (action, None)


def test_only_a_host_change_of_a_renewable_certificate_has_an_interim() -> None:
    now = T0 + 70 * DAY
    action, seen = _held_host_change(70 * DAY, "b.example.com", "a.example.com")
    found = interim_renewal(action, seen, now, None)  # sharing a name: the same, too
    assert found is not None and found.desired.spec.hosts == ("a.example.com",)
    issue = Action(ActionKind.ISSUE, action.desired, action.reason)
    assert interim_renewal(issue, None, now, None) is None
    other_ca = observed_for(OLD, cert_info("a.example.com", not_before=T0),
                            annotations={**dict(seen.recorded),
                                         secret_meta.ISSUER: "staging"})
    assert interim_renewal(action, other_ca, now, None) is None  # no `replaces` possible


def test_another_namespaces_certificate_copied_into_the_secret_is_never_renewed() -> None:
    """Hostile input: the tenant holding a host change puts another namespace's certificate
    (public, from the same CA) into its own Secret. The interim renewal renews only what the
    controller's record says it issued to this Secret, so it never orders the victim's names."""
    now = T0 + 70 * DAY
    action, seen = _held_host_change(70 * DAY, "b.example.com")
    victims = cert_info("shop.example.com", not_before=T0)
    copied = observed_for(OLD, victims, annotations=dict(seen.recorded))
    assert interim_renewal(action, copied, now, None) is None
    found = interim_renewal(action, seen, now, None)  # its own certificate: still renewed
    assert found is not None and found.desired.spec.hosts == ("a.example.com",)


def test_a_host_change_backing_off_after_failures_renews_the_names_held_once_due() -> None:
    """A new name whose challenge keeps failing (its DNS does not point here yet): the host
    change backs off, and the certificate the Secret holds is renewed for its own names
    meanwhile, not left to run out."""
    now = T0 + 70 * DAY
    action, seen = _held_host_change(70 * DAY, "a.example.com", "new.example.com")
    records = Records(FakeRecordStore(), save_every=0)
    book = RenewalBook(make_config(), records, FakeLedger(), save_every=0, jitter=lambda: 1.0)
    book.failed(REF, seen, now - timedelta(seconds=30), "challenge failed", action.desired.spec)
    assert book.failure_state(REF, seen, now, spec=action.desired.spec).waiting(now)
    placed, hold = book.admit(action, seen, now)
    assert hold is None and placed.desired.spec.hosts == ("a.example.com",)
    # once the names held were renewed and fail too, nothing more is tried until either waits out
    book.failed(REF, seen, now, "challenge failed", placed.desired.spec)
    assert book.admit(action, seen, now)[0] is action
