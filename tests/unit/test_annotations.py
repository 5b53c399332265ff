"""Opt-in rules and validation of certbotk8s.io/* source annotations against the config."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certbotk8s.core.config.durations import format_duration, parse_duration
from certbotk8s.core.model import ChallengeType, KeyType, SourceKind
from certbotk8s.core.sources.annotations import (
    AnnotationError,
    is_opted_in,
    parse_source_options,
)
from tests.unit.factories import make_config

CONFIG = make_config()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"certbotk8s.io/enabled": "true"}, True),
        ({"certbotk8s.io/enabled": "True"}, True),
        ({"kubernetes.io/tls-acme": "true"}, True),
        ({"kubernetes.io/tls-acme": "false"}, False),
        ({"certbotk8s.io/enabled": "false", "kubernetes.io/tls-acme": "true"}, False),
        ({"certbotk8s.io/issuer": "le"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_opt_in(annotations: dict[str, str] | None, expected: bool) -> None:
    assert is_opted_in(annotations) is expected


def test_defaults_come_from_the_config() -> None:
    options, errors = parse_source_options(
        {"certbotk8s.io/enabled": "true"}, CONFIG, SourceKind.INGRESS
    )
    assert errors == ()
    assert options is not None
    assert options.issuer == "le"
    assert options.challenge is ChallengeType.HTTP01
    assert options.dns_provider is None
    assert options.key_type is KeyType.ECDSA_P256
    assert options.profile is None
    assert options.renew_before is None
    assert options.gateway_namespace is None


def test_config_renewal_defaults_apply() -> None:
    config = make_config(renewal={"renewBefore": "240h", "keyType": "rsa-2048"})
    options, _ = parse_source_options({}, config, SourceKind.INGRESS)
    assert options is not None
    assert options.renew_before == timedelta(days=10)
    assert options.key_type is KeyType.RSA_2048


def test_all_valid_annotations() -> None:
    options, errors = parse_source_options(
        {
            "certbotk8s.io/enabled": "true",
            "certbotk8s.io/issuer": "staging",
            "certbotk8s.io/challenge": "dns-01",
            "certbotk8s.io/dns-provider": "bind",
            "certbotk8s.io/key-type": "rsa-3072",
            "certbotk8s.io/profile": "shortlived",
            "certbotk8s.io/renew-before": "10d",
            "certbotk8s.io/gateway-namespace": "gateways",
        },
        make_config(istio={"gatewayNamespaces": ["gateways"]}),
        SourceKind.ISTIO_GATEWAY,
    )
    assert errors == ()
    assert options is not None
    assert (options.issuer, options.challenge, options.dns_provider) == (
        "staging",
        ChallengeType.DNS01,
        "bind",
    )
    assert options.key_type is KeyType.RSA_3072
    assert options.profile == "shortlived"
    assert options.renew_before == timedelta(days=10)
    assert options.gateway_namespace == "gateways"


def test_spec_carries_every_option() -> None:
    options, _ = parse_source_options(
        {"certbotk8s.io/key-type": "ecdsa-p384", "certbotk8s.io/profile": "classic"},
        CONFIG,
        SourceKind.INGRESS,
    )
    assert options is not None
    spec = options.spec(("a.example.com",))
    assert spec.hosts == ("a.example.com",)
    assert spec.key_type is KeyType.ECDSA_P384
    assert spec.profile == "classic"
    assert spec.issuer == "le"


def test_dns_provider_alone_implies_dns01() -> None:
    options, _ = parse_source_options(
        {"certbotk8s.io/dns-provider": "bind"}, CONFIG, SourceKind.INGRESS
    )
    assert options is not None
    assert options.challenge is ChallengeType.DNS01


def test_dns01_uses_the_default_provider() -> None:
    config = make_config(defaultDnsProvider="bind")
    options, _ = parse_source_options(
        {"certbotk8s.io/challenge": "dns-01"}, config, SourceKind.INGRESS
    )
    assert options is not None
    assert options.dns_provider == "bind"


def test_profile_listed_for_the_issuer_is_allowed() -> None:
    options, errors = parse_source_options(
        {"certbotk8s.io/profile": "custom"}, CONFIG, SourceKind.INGRESS
    )
    assert errors == ()
    assert options is not None and options.profile == "custom"


def _errors(
    annotations: dict[str, str], kind: SourceKind = SourceKind.INGRESS
) -> tuple[AnnotationError, ...]:
    options, errors = parse_source_options(annotations, CONFIG, kind)
    assert options is None
    return errors


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("certbotk8s.io/enabled", "yes", '"true" or "false"'),
        ("certbotk8s.io/issuer", "nope", "no such issuer"),
        ("certbotk8s.io/challenge", "tls-alpn-01", "http-01 or dns-01"),
        ("certbotk8s.io/dns-provider", "route53", "no such DNS provider"),
        ("certbotk8s.io/key-type", "rsa-1024", "unknown key type"),
        ("certbotk8s.io/profile", "custom-other", "no such profile"),
        ("certbotk8s.io/renew-before", "30", "not a duration"),
        ("certbotk8s.io/renew-before", "0h", "longer than zero"),
        ("certbotk8s.io/renew-before", "0.0000001s", "at least 1 second"),  # was 0 (finding 8)
        ("certbotk8s.io/renew-before", "0.5s", "at least 1 second"),
        ("certbotk8s.io/renew-before", "-5h", "not a duration"),
        ("certbotk8s.io/renew-before", "", "empty"),
        ("certbotk8s.io/issuers", "le", "unknown annotation"),
        ("certbotk8s.io/keytype", "rsa-2048", "unknown annotation"),
    ],
)
def test_each_bad_annotation_is_named_with_its_value(key: str, value: str, fragment: str) -> None:
    errors = _errors({key: value})
    assert len(errors) == 1
    assert errors[0].key == key
    assert errors[0].value == value
    assert fragment in errors[0].message
    assert key in str(errors[0]) and repr(value) in str(errors[0])


def test_gateway_namespace_must_be_a_label() -> None:
    errors = _errors({"certbotk8s.io/gateway-namespace": "Istio_System"}, SourceKind.ISTIO_GATEWAY)
    assert [e.key for e in errors] == ["certbotk8s.io/gateway-namespace"]
    assert "DNS-1123" in errors[0].message


def test_gateway_namespace_only_on_istio_gateways() -> None:
    errors = _errors({"certbotk8s.io/gateway-namespace": "istio-system"}, SourceKind.INGRESS)
    assert "only applies to Istio" in errors[0].message


def test_dns01_without_any_provider() -> None:
    errors = _errors({"certbotk8s.io/challenge": "dns-01"})
    assert errors[0].key == "certbotk8s.io/challenge"
    assert "defaultDnsProvider" in errors[0].message


def test_dns_provider_contradicts_http01() -> None:
    errors = _errors({"certbotk8s.io/challenge": "http-01", "certbotk8s.io/dns-provider": "bind"})
    assert [e.key for e in errors] == ["certbotk8s.io/dns-provider"]


def test_profile_is_checked_against_the_chosen_issuer() -> None:
    errors = _errors({"certbotk8s.io/issuer": "staging", "certbotk8s.io/profile": "custom"})
    assert [e.key for e in errors] == ["certbotk8s.io/profile"]
    assert "'staging'" in errors[0].message


def test_all_errors_are_collected() -> None:
    errors = _errors(
        {"certbotk8s.io/issuer": "x", "certbotk8s.io/key-type": "y", "certbotk8s.io/typo": "z"}
    )
    assert {e.key for e in errors} == {
        "certbotk8s.io/issuer",
        "certbotk8s.io/key-type",
        "certbotk8s.io/typo",
    }


def test_foreign_annotations_are_ignored() -> None:
    options, errors = parse_source_options(
        {"nginx.ingress.kubernetes.io/ssl-redirect": "true", "cert-manager.io/issuer": "x"},
        CONFIG,
        SourceKind.INGRESS,
    )
    assert errors == () and options is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", timedelta(hours=720)),
        ("30m", timedelta(minutes=30)),
        ("10d", timedelta(days=10)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["h", "10", "10x", "1h 30m", "P10D", "10d-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for value in (timedelta(days=30), timedelta(hours=1, minutes=30), timedelta(seconds=61)):
        assert parse_duration(format_duration(value)) == value
    assert format_duration(timedelta(days=2, hours=3)) == "2d3h"
