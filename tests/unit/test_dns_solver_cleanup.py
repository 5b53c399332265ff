"""DNS-01 clean-up after a failed add: one try, never the retry loop meant for written values."""

from __future__ import annotations

from typing import Any

import pytest

from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge, TxtRecord


class Provider:
    """A provider whose add may fail (like route53 without the hosted zone) and whose clean-up
    always fails; it counts the clean-ups."""

    def __init__(self, add_fails: bool) -> None:
        self.add_fails = add_fails
        self.cleanups = 0

    def describe(self) -> str:
        return "test provider"

    def probe(self) -> str | None:
        return None

    def present(self, record: TxtRecord) -> None:
        if self.add_fails:
            raise DnsSolverError("No domain found")

    def cleanup(self, record: TxtRecord) -> None:
        self.cleanups += 1
        raise DnsSolverError("No domain found")


class Lookup:
    """The part of DnsLookup the clean-up uses; the value is never seen gone."""

    def __init__(self) -> None:
        self.asked = 0

    def challenge_name(self, domain: str, follow_cname: bool) -> str:
        return f"_acme-challenge.{domain}"

    def gone_everywhere(self, record: TxtRecord) -> bool:
        self.asked += 1
        return False


def _challenge() -> PendingChallenge:
    return PendingChallenge(ChallengeType.DNS01, "www.example.com", False, "t", "ka", "value")


def _solver(provider: Provider, lookup: Lookup, timeout: float) -> DnsSolver:
    lookup_: Any = lookup
    return DnsSolver(provider, lookup_, name="p", zones=("example.com",),
                     cleanup_timeout=timeout)


def test_a_value_whose_add_failed_is_cleaned_up_once_without_retrying() -> None:
    provider, lookup = Provider(add_fails=True), Lookup()
    solver = _solver(provider, lookup, timeout=3600)  # the old loop would retry for an hour
    with pytest.raises(DnsSolverError, match="No domain found"):
        solver.present(_challenge())
    solver.clean_up(_challenge())  # no error: the add's error already fails the order
    assert provider.cleanups == 1
    assert lookup.asked == 0


def test_a_written_value_whose_clean_up_keeps_failing_is_named_as_left_behind() -> None:
    provider, lookup = Provider(add_fails=False), Lookup()
    solver = _solver(provider, lookup, timeout=0)
    solver.present(_challenge())
    with pytest.raises(DnsSolverError, match="value value may be left behind"):
        solver.clean_up(_challenge())
    assert provider.cleanups == 1 and lookup.asked == 1
