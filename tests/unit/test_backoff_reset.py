"""When a backoff stops holding a Secret (core.renewal.backoff.for_attempt, through the book both
modes use): a change of the source's spec starts afresh, a renewal request gets one attempt."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.records import Records
from certbotk8s.core.model import ChallengeType, KeyType
from certbotk8s.core.renewal.backoff import (
    FailureState,
    after_failure,
    for_attempt,
    spec_fingerprint,
)
from certbotk8s.core.state import secret_meta
from tests.unit.factories import T0, desired, make_config, observed_for
from tests.unit.fakes import FakeLedger, FakeRecordStore

SPEC = desired("a.example.com").spec
FP = spec_fingerprint(SPEC)
DAILY = FailureState(4, T0 + timedelta(days=1), "no route", FP, T0)


def test_the_fingerprint_follows_what_is_ordered_not_when() -> None:
    assert spec_fingerprint(SPEC) == FP
    for changed in (replace(SPEC, hosts=("b.example.com",)), replace(SPEC, issuer="staging"),
                    replace(SPEC, challenge=ChallengeType.DNS01, dns_provider="bind"),
                    replace(SPEC, key_type=KeyType.RSA_2048), replace(SPEC, profile="tlsserver")):
        assert spec_fingerprint(changed) != FP, changed
    assert spec_fingerprint(replace(SPEC, renew_before=timedelta(days=9))) == FP


def test_another_spec_means_no_backoff_and_a_fresh_count() -> None:
    other = spec_fingerprint(replace(SPEC, hosts=("fixed.example.com",)))
    assert for_attempt(DAILY, FP) == DAILY
    assert for_attempt(DAILY, other) == FailureState()
    failed_again = after_failure(DAILY, T0, "still failing", 1.0, None, other)
    assert (failed_again.failures, failed_again.next_attempt) == (1, T0 + timedelta(minutes=1))
    # A state recorded before fingerprints existed is kept (unknown is not "different").
    legacy = replace(DAILY, spec="")
    assert for_attempt(legacy, other) == legacy


def test_a_request_after_the_last_failure_gets_one_attempt() -> None:
    later = T0 + timedelta(minutes=5)
    freed = for_attempt(DAILY, FP, later)
    assert not freed.waiting(later) and freed.failures == 4  # the count goes on
    assert for_attempt(DAILY, FP, T0 - timedelta(minutes=1)) == DAILY  # asked before: held
    # That attempt failed too: the request is older than the failure, the backoff is back.
    after = after_failure(freed, later + timedelta(seconds=3), "no route", 1.0, None, FP)
    assert after.failures == 5 and for_attempt(after, FP, later).waiting(later + timedelta(hours=1))


def _book(records: Records) -> RenewalBook:
    return RenewalBook(make_config(), records, FakeLedger(), save_every=0, jitter=lambda: 1.0)


def test_the_book_applies_the_rule_from_the_records() -> None:
    records = Records(FakeRecordStore(), save_every=0)
    book = _book(records)
    d = desired("a.example.com")
    for _ in range(4):
        book.failed(d.secret, None, T0, "no route", d.spec)
    assert records.get(d.secret)[secret_meta.FAILED_SPEC] == FP
    soon = T0 + timedelta(minutes=30)
    assert book.failure_state(d.secret, None, soon, spec=d.spec).waiting(soon)
    edited = desired("a.example.com", challenge=ChallengeType.DNS01)
    assert not book.failure_state(d.secret, None, soon, spec=edited.spec).waiting(soon)
    assert book.failure_state(d.secret, None, soon, spec=None).failures == 4  # as recorded
    # The command's own request, and the request annotation on an existing Secret.
    assert not book.failure_state(d.secret, None, soon, spec=d.spec,
                                  requested=soon).waiting(soon)
    asked = replace(observed_for(d), renew_requested=secret_meta.format_time(soon))
    assert not book.failure_state(d.secret, asked, soon, spec=d.spec).waiting(soon)
    future = replace(asked, renew_requested=secret_meta.format_time(soon + timedelta(days=1)))
    assert book.failure_state(d.secret, future, soon, spec=d.spec).waiting(soon)
