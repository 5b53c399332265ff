"""Host ownership: namespace patterns, first-claimant protection, name caps, order sharing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certbotk8s.core.model import Discovery, SecretRef
from certbotk8s.core.sources.claimants import pattern_matches
from certbotk8s.core.sources.ownership import (
    Holding,
    discover_owned,
    failing_claims,
    holdings,
    order_share_key,
)
from certbotk8s.core.state import records, secret_meta

from .factories import T0, desired, ingress, make_config, tls_entry

DAY = timedelta(days=1)


def _ing(namespace: str, secret: str, *hosts: str, name: str = "web") -> dict[str, object]:
    return ingress(name, namespace, tls=[tls_entry(secret, *hosts)])


def _run(*objects: dict[str, Any], holdings: tuple[Holding, ...] = (),
         **config: Any) -> Discovery:
    return discover_owned(list(objects), [], [], [], make_config(**config), holdings)


def _reasons(found: Discovery) -> list[tuple[str, str]]:
    return [(p.source.namespace, p.reason) for p in found.problems]


def test_patterns_match_exact_names_and_everything_below_a_wildcard() -> None:
    assert pattern_matches("a.example.org", "a.example.org")
    assert not pattern_matches("a.example.org", "x.a.example.org")
    assert pattern_matches("*.a.example.com", "x.a.example.com")
    assert pattern_matches("*.a.example.com", "y.x.a.example.com")
    assert pattern_matches("*.a.example.com", "*.a.example.com")
    assert not pattern_matches("*.a.example.com", "a.example.com")
    assert not pattern_matches("*.a.example.com", "xa.example.com")


def test_host_patterns_limit_each_namespace_to_its_own_domains() -> None:
    tenants = {"hostPatterns": {"team-a": ["*.a.example.com"], "team-b": ["b.example.com"]}}
    found = _run(_ing("team-a", "mine", "www.a.example.com"),
                 _ing("team-a", "theirs", "b.example.com", name="grab"),
                 _ing("team-c", "c", "www.a.example.com"), tenants=tenants)
    assert [d.secret for d in found.desired] == [SecretRef("team-a", "mine")]
    assert sorted(_reasons(found)) == [("team-a", "HostNotAllowed"), ("team-c", "HostNotAllowed")]
    assert any("namespace team-a may not ask for b.example.com" in p.message
               for p in found.problems)


def test_host_not_allowed_names_the_config_keys_that_fix_it() -> None:
    found = _run(_ing("team-c", "c", "www.c.example.com"), tenants={"hostPatterns": {}})
    (problem,) = found.problems
    assert "tenants.hostPatterns.team-c" in problem.message
    assert "tenants.allowAnyHost: true" in problem.message


def test_allow_any_host_lets_every_namespace_ask_but_keeps_first_claimant_protection() -> None:
    held = (Holding(SecretRef("team-b", "b-tls"), ("shop.example.com",), "Ingress/team-b/web"),)
    found = _run(_ing("team-a", "new", "new.example.com"),
                 _ing("team-a", "stolen", "shop.example.com", name="grab"),
                 holdings=held, tenants={"allowAnyHost": True})
    assert [d.secret for d in found.desired] == [SecretRef("team-a", "new")]
    assert _reasons(found) == [("team-a", "HostClaimed")]


def test_allow_any_host_false_without_patterns_allows_no_host() -> None:
    found = _run(_ing("team-a", "s", "new.example.com"), tenants={"allowAnyHost": False})
    assert found.desired == ()
    assert _reasons(found) == [("team-a", "HostNotAllowed")]


def test_without_host_patterns_any_namespace_may_ask_for_a_new_host() -> None:
    found = _run(_ing("team-a", "s", "new.example.com"))
    assert [d.secret for d in found.desired] == [SecretRef("team-a", "s")]
    assert found.problems == ()


def test_host_held_in_one_namespace_is_refused_for_another() -> None:
    held = (Holding(SecretRef("team-b", "b-tls"), ("shop.example.com",),
                    "Ingress/team-b/web"),)
    found = _run(_ing("team-b", "b-tls", "shop.example.com"),
                 _ing("team-a", "stolen", "shop.example.com"), holdings=held)
    assert [d.secret for d in found.desired] == [SecretRef("team-b", "b-tls")]
    assert _reasons(found) == [("team-a", "HostClaimed")]


def test_share_hosts_lets_namespaces_share_a_host() -> None:
    held = (Holding(SecretRef("team-b", "b-tls"), ("shop.example.com",)),)
    found = _run(_ing("team-a", "mine", "shop.example.com"), holdings=held,
                 tenants={"shareHosts": True})
    assert [d.secret for d in found.desired] == [SecretRef("team-a", "mine")]


def _created(obj: dict[str, Any], at: str) -> dict[str, Any]:
    obj["metadata"]["creationTimestamp"] = at
    return obj


def test_a_new_host_asked_for_by_two_namespaces_at_once_goes_to_the_older_source() -> None:
    """Exactly one claimant wins, the same one whatever order the sources are listed in (the
    API server's creation time, which no tenant can set); the other is refused."""
    a = _created(_ing("team-a", "a", "new.example.com"), "2025-01-01T00:00:01Z")
    b = _created(_ing("team-b", "b", "new.example.com"), "2025-01-01T00:00:00Z")
    for listed in ((a, b), (b, a)):
        found = _run(*listed)
        assert [d.secret.namespace for d in found.desired] == ["team-b"]
        assert _reasons(found) == [("team-a", "HostClaimed")]
    # created in the same second: the namespace name decides, still exactly one
    same = _created(_ing("team-a", "a", "new.example.com"), "2025-01-01T00:00:00Z")
    found = _run(b, same)
    assert [d.secret.namespace for d in found.desired] == ["team-a"]
    assert _reasons(found) == [("team-b", "HostClaimed")]


def test_a_source_that_cannot_get_its_certificate_does_not_squat_a_host() -> None:
    """An old source whose first issuance keeps failing (it cannot pass the challenge) ranks
    after a newer one: the host's real owner gets it, and holds it from then on."""
    squatter = _created(_ing("team-b", "b", "shop.example.com"), "2020-01-01T00:00:00Z")
    owner = _created(_ing("team-a", "a", "shop.example.com"), "2025-01-01T00:00:00Z")
    record = {secret_meta.FAILURES: "3", secret_meta.NEXT_ATTEMPT: "2025-01-02T00:00:00Z"}
    failing = failing_claims({SecretRef("team-b", "b"): record})
    found = discover_owned([squatter, owner], [], [], [], make_config(), (), failing)
    assert [d.secret.namespace for d in found.desired] == ["team-a"]
    assert _reasons(found) == [("team-b", "HostClaimed")]
    # a Secret that holds a certificate is a holder, failures or not
    assert failing_claims({SecretRef("team-b", "b"): {**record, secret_meta.HOSTS: "x"}}) == set()


def test_a_holder_keeps_its_host_against_an_older_source() -> None:
    """A source created long ago and opted in later does not take a host already held."""
    held = (Holding(SecretRef("team-a", "a"), ("shop.example.com",), "Ingress/team-a/web",
                    datetime(2025, 6, 1, tzinfo=UTC)),)
    old = _created(_ing("team-b", "b", "shop.example.com"), "2020-01-01T00:00:00Z")
    found = _run(_created(_ing("team-a", "a", "shop.example.com"), "2025-06-01T00:00:00Z"), old,
                 holdings=held)
    assert [d.secret.namespace for d in found.desired] == ["team-a"]
    assert _reasons(found) == [("team-b", "HostClaimed")]


def test_of_two_holders_of_one_host_the_older_claim_keeps_renewing() -> None:
    """Two namespaces both holding a host (certificates from before claims were atomic): the
    older claim keeps it, instead of each refusing the other for ever."""
    held = (Holding(SecretRef("team-a", "a"), ("shop.example.com",), "", T0 + DAY),
            Holding(SecretRef("team-b", "b"), ("shop.example.com",), "", T0))
    found = _run(_ing("team-a", "a", "shop.example.com"), _ing("team-b", "b", "shop.example.com"),
                 holdings=held)
    assert [d.secret.namespace for d in found.desired] == ["team-b"]
    assert _reasons(found) == [("team-a", "HostClaimed")]


def test_a_claim_lapses_after_the_grace_period_and_not_before() -> None:
    record = {secret_meta.HOSTS: "shop.example.com", records.CLAIMED_SINCE: "2025-01-01T00:00:00Z",
              records.RELEASED_AT: secret_meta.format_time(T0)}
    grace = timedelta(hours=1)
    ref = SecretRef("team-a", "a")
    assert [h.hosts for h in holdings({ref: record}, T0 + grace / 2, grace)] == [
        ("shop.example.com",)]
    assert holdings({ref: record}, T0 + grace, grace) == []


def test_a_refused_claimant_does_not_block_a_third_namespace() -> None:
    """Claims are handed out oldest source first, and only to sources that get them."""
    held = (Holding(SecretRef("team-a", "a"), ("a.example.com",), "", T0),)
    greedy = _created(_ing("team-b", "b", "a.example.com", "c.example.com"),
                      "2020-01-01T00:00:00Z")
    victim = _created(_ing("team-c", "c", "c.example.com"), "2025-01-01T00:00:00Z")
    found = _run(greedy, victim, holdings=held)
    assert [d.secret.namespace for d in found.desired] == ["team-c"]
    assert _reasons(found) == [("team-b", "HostClaimed")]


def test_same_host_twice_in_one_namespace_is_fine() -> None:
    found = _run(_ing("team-a", "a", "new.example.com"),
                 _ing("team-a", "b", "new.example.com", name="other"))
    assert len(found.desired) == 2


def test_more_names_than_the_cap_refuse_the_certificate() -> None:
    hosts = [f"h{i}.example.com" for i in range(101)]
    found = _run(_ing("team-a", "big", *hosts))
    assert found.desired == ()
    assert _reasons(found) == [("team-a", "TooManyHosts")]
    assert len(_run(_ing("team-a", "ok", *hosts[:100])).desired) == 1
    lower = _run(_ing("team-a", "ok", *hosts[:3]), tenants={"maxHostsPerCertificate": 2})
    assert _reasons(lower) == [("team-a", "TooManyHosts")]


def test_conflict_leaves_the_first_claimant_its_certificate() -> None:
    """A later claimant of a Secret, with other hosts, no longer stops the holder's renewals."""
    held = (Holding(SecretRef("team-a", "shared"), ("a.example.com",), "Ingress/team-a/first"),)
    found = _run(_ing("team-a", "shared", "a.example.com", name="first"),
                 _ing("team-a", "shared", "evil.example.com", name="late"), holdings=held)
    assert [(d.secret, d.source.name) for d in found.desired] == [
        (SecretRef("team-a", "shared"), "first")]
    conflicts = [p for p in found.problems if p.reason == "SecretConflict"]
    assert sorted(p.source.name for p in conflicts) == ["first", "late"]
    assert all("Ingress/team-a/first holds it first and keeps it" in p.message for p in conflicts)


def test_config_default_certificate_conflict_is_reported_on_the_config_too() -> None:
    found = _run(_ing("team-a", "shared", "a.example.com"),
                 defaultCertificate={"hosts": ["default.example.com"],
                                     "secret": {"namespace": "team-a", "name": "shared"}})
    kinds = sorted(p.source.kind for p in found.problems if p.reason == "SecretConflict")
    assert kinds == ["Config", "Ingress"]


def test_orders_are_shared_only_inside_one_namespace() -> None:
    one = desired("a.example.com", secret=SecretRef("team-a", "x"))
    same_ns = desired("a.example.com", secret=SecretRef("team-a", "y"))
    other_ns = desired("a.example.com", secret=SecretRef("team-b", "x"))
    assert order_share_key(one) == order_share_key(same_ns)
    assert order_share_key(one) != order_share_key(other_ns)


_DNS01 = {"certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "dns-01",
          "certbotk8s.io/dns-provider": "bind"}


def _wild(namespace: str, secret: str, *hosts: str, name: str = "web") -> dict[str, object]:
    return ingress(name, namespace, tls=[tls_entry(secret, *hosts)], annotations=_DNS01)


def test_a_wildcard_and_a_name_it_covers_conflict_both_ways() -> None:
    """Finding 7: claims compare what the certificates would be valid for, not the strings.
    `*.example.com` is valid for `shop.example.com` (one label deep, as X.509 wildcards are);
    with `shop.example.com` and `*.apps.example.com` held by team A, team B gets neither
    `*.example.com` nor `pay.apps.example.com`."""
    held = (Holding(SecretRef("team-a", "a"), ("*.apps.example.com", "shop.example.com"),
                    "Ingress/team-a/web", T0),)
    found = _run(_wild("team-a", "a", "shop.example.com", "*.apps.example.com"),
                 _wild("team-b", "wild", "*.example.com", name="wild"),
                 _ing("team-b", "pay", "pay.apps.example.com", name="pay"), holdings=held)
    assert [d.secret.namespace for d in found.desired] == ["team-a"]
    assert sorted((p.source.name, p.reason) for p in found.problems) == [
        ("pay", "HostClaimed"), ("wild", "HostClaimed")]


def test_wildcard_coverage_is_one_label_deep_and_never_the_apex() -> None:
    """`*.example.com` is not valid for `example.com`, nor for `a.b.example.com`, nor does
    it overlap `*.apps.example.com`: those stay free for another namespace."""
    held = (Holding(SecretRef("team-a", "a"), ("*.example.com",), "Ingress/team-a/web", T0),)
    found = _run(_wild("team-a", "a", "*.example.com"),
                 _ing("team-b", "apex", "example.com", name="apex"),
                 _ing("team-b", "deep", "a.b.example.com", name="deep"),
                 _wild("team-b", "sub", "*.apps.example.com", name="sub"), holdings=held)
    assert sorted(d.secret.name for d in found.desired) == ["a", "apex", "deep", "sub"]
    assert found.problems == ()


def test_a_new_wildcard_and_a_new_covered_name_go_to_the_older_source() -> None:
    """Two new claimants whose names overlap only by coverage: exactly one, the older source."""
    wild = _created(_wild("team-a", "a", "*.example.com"), "2025-01-01T00:00:01Z")
    name = _created(_ing("team-b", "b", "shop.example.com"), "2025-01-01T00:00:00Z")
    for listed in ((wild, name), (name, wild)):
        found = _run(*listed)
        assert [d.secret.namespace for d in found.desired] == ["team-b"]
        assert _reasons(found) == [("team-a", "HostClaimed")]


def test_of_two_holders_overlapping_by_coverage_the_older_claim_keeps_renewing() -> None:
    held = (Holding(SecretRef("team-a", "a"), ("*.example.com",), "", T0 + DAY),
            Holding(SecretRef("team-b", "b"), ("shop.example.com",), "", T0))
    found = _run(_wild("team-a", "a", "*.example.com"), _ing("team-b", "b", "shop.example.com"),
                 holdings=held)
    assert [d.secret.namespace for d in found.desired] == ["team-b"]
    assert _reasons(found) == [("team-a", "HostClaimed")]
    # the same namespace may hold a wildcard and the names it covers
    mine = _run(_wild("team-a", "a", "*.example.com"),
                _ing("team-a", "b", "shop.example.com", name="other"))
    assert len(mine.desired) == 2
