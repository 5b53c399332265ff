"""Discovery's memo of normalised hosts: a repeated pass normalises nothing again (finding 4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certbotk8s.core.sources import discovery
from certbotk8s.core.sources.host_memo import HostMemo
from certbotk8s.core.sources.names import normalize_host
from certbotk8s.core.sources.ownership import discover_owned

from .factories import ingress, make_config, tls_entry

CONFIG = make_config(tenants={"allowAnyHost": True})


def _hostile(count: int, hosts: int = 1000) -> list[dict[str, object]]:
    """The finding's flood: Ingresses of 1,000 distinct names each (refused: over 100 names)."""
    return [ingress(f"h-{i}", "evil", tls=[tls_entry(f"s-{i}", *(
        f"h{j}.x{i}.evil.example.com" for j in range(hosts)))]) for i in range(count)]


@pytest.fixture
def normalised(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name discovery normalises, in order."""
    seen: list[str] = []
    real: Callable[[str], str] = normalize_host

    def counting(raw: str) -> str:
        seen.append(raw)
        return real(raw)

    monkeypatch.setattr(discovery, "normalize_host", counting)
    return seen


def test_a_repeated_pass_normalises_no_host_again(normalised: list[str]) -> None:
    """90 Ingresses of 1,000 names each took 1.5 s of CPU in every pass: more distinct names
    than the per-name cache holds. With the memo the second pass normalises none of them,
    and finds the same."""
    victim = ingress("shop", "team-a", tls=[tls_entry("shop-tls", "shop.example.com")])
    sources = [*_hostile(90), victim]
    memo = HostMemo()
    first = discover_owned(sources, [], [], [], CONFIG, [], memo=memo)
    assert len(normalised) == 90 * 1000 + 1
    normalised.clear()
    again = discover_owned(sources, [], [], [], CONFIG, [], memo=memo)
    assert normalised == []
    assert again == first
    assert [d.secret.name for d in again.desired] == ["shop-tls"]
    assert {p.reason for p in again.problems} == {"TooManyHosts"}


def test_a_changed_source_is_normalised_again_and_a_gone_one_is_forgotten(
        normalised: list[str]) -> None:
    memo = HostMemo()
    a, b = _hostile(2, hosts=3)
    discover_owned([a, b], [], [], [], CONFIG, [], memo=memo)
    assert len(memo) == 2
    changed = ingress("h-0", "evil", tls=[tls_entry("s-0", "new.evil.example.com")])
    normalised.clear()
    found = discover_owned([changed], [], [], [], CONFIG, [], memo=memo)
    assert normalised == ["new.evil.example.com"]
    assert [d.spec.hosts for d in found.desired] == [("new.evil.example.com",)]
    discover_owned([changed], [], [], [], CONFIG, [], memo=memo)
    assert len(memo) == 1  # only what the last pass used is kept


def test_problems_come_back_from_the_memo_on_each_source_that_has_them() -> None:
    """Two sources with the same bad list: each is told, on every pass."""
    memo = HostMemo()
    bad = [ingress(name, ns, tls=[tls_entry("t", "db.internal", "a..b")])
           for name, ns in (("one", "team-a"), ("two", "team-b"))]
    for _ in range(2):
        found = discover_owned(bad, [], [], [], CONFIG, [], memo=memo)
        assert sorted((p.source.name, p.reason) for p in found.problems) == [
            ("one", "InvalidHostname"), ("one", "SpecialUseName"),
            ("two", "InvalidHostname"), ("two", "SpecialUseName")]
