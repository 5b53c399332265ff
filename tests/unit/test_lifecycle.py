"""core.renewal.lifecycle: may a certificate be ordered now, or why it waits (each reason, their
order, when to look again)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certbotk8s.core.budget import ratelimit
from certbotk8s.core.model import SecretRef
from certbotk8s.core.renewal.backoff import FailureState
from certbotk8s.core.renewal.lifecycle import (
    OrderFacts,
    ServiceDown,
    WaitKind,
    hold_message,
    waits,
    wake_at,
    why_wait,
)
from tests.unit.factories import T0

REF = SecretRef("shop", "web-tls")
LATER = T0 + timedelta(minutes=10)
BACKOFF = FailureState(2, LATER, "challenge failed")
HOLD = ratelimit.Hold(ratelimit.LIMIT_FAILED_AUTHZ, "a.example.com", T0 + timedelta(hours=1),
                      "5 failed authorizations for a.example.com in the last hour")
CA_DOWN = ServiceDown("CaUnavailable", "CA unreachable: refused (ACME CA of issuer le)")
DNS_DOWN = ServiceDown("DnsUnavailable", "DNS server unreachable: timeout (DNS provider bind)")


def facts(**changes: object) -> OrderFacts:
    return OrderFacts(REF, **changes)  # type: ignore[arg-type]


def test_nothing_holds_a_certificate_with_no_facts_against_it() -> None:
    assert why_wait(facts(), T0) is None and waits(facts(), T0) == ()
    # a backoff or a hold that has ended holds nothing either
    ended = facts(failure=FailureState(1, T0, "x"), hold=ratelimit.Hold("l", "k", T0, "m"))
    assert why_wait(ended, T0) is None


@pytest.mark.parametrize(("changes", "kind", "words", "until"), [
    ({"leading": False}, WaitKind.NOT_LEADER, "does not hold the Lease", None),
    ({"namespace_deleting": True}, WaitKind.NAMESPACE_DELETING, "namespace shop is being deleted",
     None),
    ({"foreign": True}, WaitKind.FOREIGN_SECRET,
     "Secret shop/web-tls exists and is not managed by certbotk8s", None),
    ({"foreign_until": LATER}, WaitKind.FOREIGN_SECRET, "not managed", None),
    ({"due": False}, WaitKind.NO_LONGER_DUE, "the Secret changed since the pass looked", None),
    ({"unwritten": True}, WaitKind.UNWRITTEN_PENDING, "issued earlier", None),
    ({"failure": BACKOFF}, WaitKind.BACKOFF,
     "backing off after 2 failed attempts; next attempt at 2025-01-01T00:10:00Z (last error: "
     "challenge failed)", LATER),
    ({"hold": HOLD}, WaitKind.RATE_LIMIT, hold_message(HOLD), HOLD.until),
    ({"down": (CA_DOWN,)}, WaitKind.CA_DOWN, CA_DOWN.message, None),
    ({"down": (DNS_DOWN, CA_DOWN)}, WaitKind.DNS_DOWN, DNS_DOWN.message, None),
])
def test_each_reason_to_wait(changes: dict[str, object], kind: WaitKind, words: str,
                             until: object) -> None:
    wait = why_wait(facts(**changes), T0)
    assert wait is not None and wait.kind is kind and words in wait.message
    assert wait.until == until
    assert str(wait).startswith(f"{kind.value}: ")


def test_a_refusal_remembered_until_a_time_past_holds_nothing() -> None:
    assert why_wait(facts(foreign_until=T0), T0) is None


def test_the_rate_limit_message_is_the_one_of_the_event() -> None:
    assert hold_message(HOLD) == ("rate-limit hold: 5 failed authorizations for a.example.com "
                                  "in the last hour; ordering possible at 2025-01-01T01:00:00Z")


def test_the_first_reason_that_applies_decides_in_a_fixed_order() -> None:
    everything = facts(leading=False, namespace_deleting=True, foreign=True, due=False,
                       unwritten=True, failure=BACKOFF, hold=HOLD, down=(CA_DOWN,))
    assert [w.kind for w in waits(everything, T0)] == list(WaitKind)[:-1]  # one service: CA
    # a certificate issued earlier is written whatever backoff and budget say ...
    assert _kind(facts(unwritten=True, failure=BACKOFF, hold=HOLD)) is WaitKind.UNWRITTEN_PENDING
    # ... and only a certificate nothing else holds waits on its service (and is counted)
    assert _kind(facts(failure=BACKOFF, down=(CA_DOWN,))) is WaitKind.BACKOFF


def _kind(found: OrderFacts) -> WaitKind | None:
    wait = why_wait(found, T0)
    return wait.kind if wait is not None else None


def test_the_controller_looks_again_when_the_first_known_wait_ends() -> None:
    assert wake_at(waits(facts(leading=False, failure=BACKOFF, hold=HOLD), T0)) == LATER
    assert wake_at(waits(facts(hold=HOLD, down=(CA_DOWN,)), T0)) == HOLD.until
    assert wake_at(waits(facts(down=(CA_DOWN,), foreign=True), T0)) is None
