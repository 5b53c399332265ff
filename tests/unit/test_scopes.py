"""Issuer and profile scopes (finding 6): which namespaces may use an issuer, which profiles."""

from __future__ import annotations

from typing import Any

import pytest

from certbotk8s.core.config.settings import ConfigError, parse_config
from certbotk8s.core.model import SourceKind
from certbotk8s.core.sources.annotations import parse_source_options
from certbotk8s.core.sources.discovery import discover

from .factories import ingress, make_config, tls_entry

_ISSUERS: dict[str, Any] = {
    "le": {"directory": "https://acme.example/dir"},
    "internal": {"directory": "https://ca.corp.example/dir", "namespaces": ["payments"],
                 "profiles": ["corp-short"]},
}


def _config(**overrides: Any) -> Any:
    return make_config(issuers=overrides.pop("issuers", _ISSUERS), **overrides)


def _refusals(namespace: str, annotations: dict[str, str], **config: Any) -> list[tuple[str, str]]:
    obj = ingress("web", namespace, tls=[tls_entry("s", "a.example.com")],
                  annotations={"certbotk8s.io/enabled": "true", **annotations})
    found = discover([obj], [], [], [], _config(**config))
    return [(p.reason, p.message) for p in found.problems]


def test_an_issuer_scoped_to_namespaces_is_refused_elsewhere_with_its_own_reason() -> None:
    assert _refusals("payments", {"certbotk8s.io/issuer": "internal"}) == []
    refused = _refusals("team-b", {"certbotk8s.io/issuer": "internal"})
    assert [reason for reason, _ in refused] == ["IssuerNotAllowed"]
    assert "'internal'" in refused[0][1] and "'team-b'" in refused[0][1]
    # an issuer without `namespaces` serves every namespace
    assert _refusals("team-b", {"certbotk8s.io/issuer": "le"}) == []


def test_a_scoped_default_issuer_is_refused_to_sources_outside_its_scope() -> None:
    assert _refusals("payments", {}, defaultIssuer="internal") == []
    assert [r for r, _ in _refusals("team-b", {}, defaultIssuer="internal")] == [
        "IssuerNotAllowed"]


def test_a_profile_the_issuer_does_not_list_is_refused() -> None:
    """`profiles` listed: exactly those; absent: the well-known ones."""
    assert _refusals("payments", {"certbotk8s.io/issuer": "internal",
                                  "certbotk8s.io/profile": "corp-short"}) == []
    refused = _refusals("payments", {"certbotk8s.io/issuer": "internal",
                                     "certbotk8s.io/profile": "shortlived"})
    assert [r for r, _ in refused] == ["ProfileNotAllowed"]
    assert _refusals("team-b", {"certbotk8s.io/profile": "shortlived"}) == []
    assert [r for r, _ in _refusals("team-b", {"certbotk8s.io/profile": "corp-short"})] == [
        "ProfileNotAllowed"]


def test_issuer_namespaces_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"issuers\.x\.namespaces\[0\]"):
        parse_config({"issuers": {"x": {"directory": "https://ca.example/dir",
                                        "namespaces": ["Not_A_Namespace"]}}})
    with pytest.raises(ConfigError, match=r"issuers\.x\.defaultProfile"):
        parse_config({"issuers": {"x": {"directory": "https://ca.example/dir",
                                        "profiles": ["a"], "defaultProfile": "classic"}}})


def test_parse_source_options_without_a_namespace_checks_no_scope() -> None:
    """The config's own default certificate is the operator's: no namespace scope applies."""
    options, errors = parse_source_options({"certbotk8s.io/issuer": "internal"},
                                           _config(), SourceKind.INGRESS)
    assert errors == () and options is not None and options.issuer == "internal"
