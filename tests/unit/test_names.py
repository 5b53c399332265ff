"""Host name normalisation (A-labels, wildcards, refusals) and Kubernetes name checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbotk8s.core.sources.names import (
    InvalidHostname,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_wildcard,
    normalize_host,
    normalize_hosts,
)
from certbotk8s.core.sources.text import quote


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("www.example.com.", "www.example.com"),
        ("  api.example.com ", "api.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("*.example.com", "*.example.com"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("1.example.com", "1.example.com"),
    ],
)
def test_normalises_to_lower_case_a_labels(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "empty"),
        ("192.0.2.1", "IP"),
        ("2001:db8::1", "IP"),
        ("[2001:db8::1]", "IP"),
        ("localhost", "single-label"),
        ("a" * 64 + ".example.com", "63"),
        (".".join(["a" * 60] * 5), "253"),
        ("under_score.example.com", "not allowed"),
        ("sp ace.example.com", "not allowed"),
        ("-lead.example.com", "hyphen"),
        ("a..example.com", "empty label"),
        ("*", "alone"),
        ("*.com", "two labels"),
        ("a.*.example.com", "leftmost"),
        ("*foo.example.com", "leftmost"),
        ("**.example.com", "leftmost"),
        ("*.*.example.com", "leftmost"),
        ("example.123", "all digits"),
    ],
)
def test_refuses_with_a_clear_message(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidHostname) as info:
        normalize_host(raw)
    assert fragment in str(info.value)
    assert quote(raw) in str(info.value)


def test_invalid_hostname_is_a_value_error() -> None:
    assert issubclass(InvalidHostname, ValueError)


def test_is_wildcard() -> None:
    assert is_wildcard("*.example.com")
    assert not is_wildcard("www.example.com")
    assert not is_wildcard("example.com")


def test_normalize_hosts_sorts_and_dedupes() -> None:
    assert normalize_hosts(["b.example.com", "A.example.com.", "a.example.com"]) == (
        "a.example.com",
        "b.example.com",
    )


def test_normalize_hosts_raises_on_a_bad_one() -> None:
    with pytest.raises(InvalidHostname):
        normalize_hosts(["a.example.com", "bad_host.example.com"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("istio-system", True),
        ("a", True),
        ("A", False),
        ("a.b", False),
        ("-a", False),
        ("a" * 64, False),
    ],
)
def test_dns1123_label(value: str, ok: bool) -> None:
    assert is_dns1123_label(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("web-tls", True),
        ("a.b-c", True),
        ("Web", False),
        ("a_b", False),
        ("", False),
        ("a" * 254, False),
    ],
)
def test_dns1123_subdomain(value: str, ok: bool) -> None:
    assert is_dns1123_subdomain(value) is ok


_label = st.from_regex(r"\A[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?\Z")
_hosts = (
    st.lists(_label, min_size=2, max_size=4)
    .map(".".join)
    .filter(
        lambda h: not h.rsplit(".", 1)[1].isdigit() and all(lb[2:4] != "--" for lb in h.split("."))
    )
)


@given(_hosts)
def test_normalisation_is_idempotent_and_case_insensitive(host: str) -> None:
    once = normalize_host(host)
    assert normalize_host(once) == once
    assert normalize_host(host.upper()) == once
    assert normalize_host(host + ".") == once
    assert once == once.lower()
    assert once.isascii()


@given(_hosts)
def test_wildcard_keeps_its_base(host: str) -> None:
    assert normalize_host("*." + host) == "*." + normalize_host(host)


@given(st.lists(_hosts, max_size=6))
def test_normalize_hosts_is_sorted_unique_and_order_free(hosts: list[str]) -> None:
    result = normalize_hosts(hosts)
    assert list(result) == sorted(set(result))
    assert normalize_hosts(reversed(hosts)) == result
