"""The dnsProviders section (every provider type parsed, scope fields, ambient credentials) and
the solver.dns01 propagation settings and solver.orderTimeout; errors naming the path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from certbotk8s.core.config.dns_providers import (
    ExecConfig,
    LexiconConfig,
    SecretKeyRef,
    WebhookConfig,
)
from certbotk8s.core.config.schema import config_schema
from certbotk8s.core.config.settings import ConfigError, PropagationMode, parse_config
from certbotk8s.core.model import ChallengeType, SourceKind
from certbotk8s.core.sources.annotations import parse_source_options


def _config(providers: dict[str, Any], **extra: Any) -> Any:
    return parse_config({"controllerNamespace": "certs",
                         "issuers": {"le": {"directory": "https://acme.example/dir"}},
                         "dnsProviders": providers, **extra})


def _error(providers: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        _config(providers)
    return str(info.value)


def test_lexicon_provider_options_and_credentials_from_secrets() -> None:
    config = _config({"cf": {
        "type": "lexicon", "provider": "cloudflare", "zones": ["Example.com."],
        "namespaces": ["team-a"], "followCname": True, "options": {"zone_id": "abc", "n": 3},
        "credentials": {"auth_token": {"name": "cf", "key": "token"},
                        "auth_username": {"namespace": "dns", "name": "cf2", "key": "user"}},
    }})
    cf = config.dns_providers["cf"]
    assert cf.type == "lexicon" and cf.follow_cname
    assert cf.zones == ("example.com",) and cf.namespaces == ("team-a",)
    assert cf.settings == LexiconConfig(
        provider="cloudflare", options=(("n", "3"), ("zone_id", "abc")),
        credentials=(("auth_token", SecretKeyRef("certs", "cf", "token")),
                     ("auth_username", SecretKeyRef("dns", "cf2", "user"))))
    assert cf.secret_refs == (SecretKeyRef("certs", "cf", "token"),
                              SecretKeyRef("dns", "cf2", "user"))


def test_webhook_and_exec_settings() -> None:
    config = _config({
        "hook": {"type": "webhook", "url": "http://dns-hook.dns.svc:8080/acme",
                 "tokenSecretRef": {"name": "hook", "key": "token"}, "timeout": 5,
                 "retries": 2},
        "script": {"type": "exec", "command": ["/hooks/dns.sh", "--zone", "x"]},
    })
    hook = config.dns_providers["hook"].settings
    assert isinstance(hook, WebhookConfig)
    assert (hook.url, hook.token, hook.retries) == (
        "http://dns-hook.dns.svc:8080/acme", SecretKeyRef("certs", "hook", "token"), 2)
    assert hook.timeout.total_seconds() == 5
    script = config.dns_providers["script"].settings
    assert isinstance(script, ExecConfig)
    assert script.command == ("/hooks/dns.sh", "--zone", "x")
    assert script.timeout.total_seconds() == 60
    assert config.dns_providers["script"].namespaces is None  # absent: every namespace
    assert not config.dns_providers["script"].follow_cname  # off unless configured


@pytest.mark.parametrize(("providers", "message"), [
    ({"d": {"type": "lexicon"}}, "dnsProviders.d.provider: is required"),
    ({"d": {"type": "lexicon", "provider": "Route 53"}}, "dnsProviders.d.provider: 'Route 53'"),
    ({"d": {"type": "lexicon", "provider": "route53",
            "options": {"auth_access_secret": "s3cr3t"}}},
     "dnsProviders.d.options.auth_access_secret: credentials are read from a Secret"),
    ({"d": {"type": "lexicon", "provider": "route53",
            "credentials": {"auth_access_key": "AKIA"}}},
     "dnsProviders.d.credentials.auth_access_key: must be a mapping"),
    ({"d": {"type": "webhook", "url": "ftp://x"}}, "dnsProviders.d.url: must be an http(s) URL"),
    ({"d": {"type": "webhook", "url": "https://u:p@x/"}}, "dnsProviders.d.url: must be an http"),
    ({"d": {"type": "webhook", "url": "https://x/", "retries": 50}},
     "dnsProviders.d.retries: must be a whole number 0-10"),
    ({"d": {"type": "webhook", "url": "https://x/", "token": "abc"}},
     "dnsProviders.d.token: unknown field"),
    ({"d": {"type": "exec", "command": ["dns.sh"]}},
     "dnsProviders.d.command[0]: must be an absolute path"),
    ({"d": {"type": "exec"}}, "dnsProviders.d.command: is required"),
    ({"d": {"type": "exec", "command": ["/x"], "timeout": 9999}},
     "dnsProviders.d.timeout: must be at most 600 seconds"),
    ({"d": {"type": "exec", "command": ["/x"], "zones": ["not a zone"]}},
     "dnsProviders.d.zones[0]: 'not a zone' is not a DNS zone name"),
    ({"d": {"type": "exec", "command": ["/x"], "namespaces": ["Team_A"]}},
     "dnsProviders.d.namespaces[0]: 'Team_A' is not a valid namespace name"),
    ({"d": {"type": "exec", "command": ["/x"], "followCname": "yes"}},
     "dnsProviders.d.followCname: must be true or false"),
    ({"d": {"type": "exec", "command": ["/x"], "server": "ns1"}},
     "dnsProviders.d.server: unknown field"),
    ({"d": {"type": "route53"}}, "dnsProviders.d.type: unknown provider type 'route53'"),
])
def test_errors_name_the_path(providers: dict[str, Any], message: str) -> None:
    assert message in _error(providers)


def test_no_credential_value_is_echoed_in_errors() -> None:
    error = _error({"d": {"type": "lexicon", "provider": "route53",
                          "options": {"auth_access_secret": "wJalrXUtnFEMI-SECRET"}}})
    assert "wJalrXUtnFEMI-SECRET" not in error


def test_zones_scope_matches_names_inside_only() -> None:
    provider = _config({"d": {"type": "exec", "command": ["/x"],
                              "zones": ["example.com"]}}).dns_providers["d"]
    assert provider.allows_name("_acme-challenge.www.example.com.")
    assert provider.allows_name("example.com")
    assert not provider.allows_name("_acme-challenge.badexample.com")
    assert not provider.allows_name("example.com.evil.net")


def test_namespace_scope_refuses_sources_elsewhere() -> None:
    config = _config({"team": {"type": "exec", "command": ["/x"], "namespaces": ["team-a"]}},
                     defaultDnsProvider="team")
    dns01 = {"certbotk8s.io/challenge": "dns-01"}
    named = {"certbotk8s.io/dns-provider": "team"}
    ok, errors = parse_source_options(named, config, SourceKind.INGRESS, namespace="team-a")
    assert errors == () and ok is not None and ok.challenge is ChallengeType.DNS01
    for source_annotations in (dns01, named):
        options, errors = parse_source_options(source_annotations, config, SourceKind.INGRESS,
                                               namespace="team-b")
        assert options is None
        assert "may not be used from namespace 'team-b'" in str(errors[0])


def test_ambient_credentials_are_a_choice_for_route53_only() -> None:
    config = _config({"r53": {"type": "lexicon", "provider": "route53",
                              "credentials": "ambient", "options": {"zone_id": "Z1"}}})
    settings = config.dns_providers["r53"].settings
    assert settings == LexiconConfig(provider="route53", options=(("zone_id", "Z1"),),
                                     ambient=True)
    assert config.dns_providers["r53"].secret_refs == ()
    keyed = _config({"r53": {"type": "lexicon", "provider": "route53", "credentials": {
        "auth_access_key": {"name": "aws", "key": "id"},
        "auth_access_secret": {"name": "aws", "key": "secret"}}}})
    keyed_settings = keyed.dns_providers["r53"].settings
    assert isinstance(keyed_settings, LexiconConfig) and not keyed_settings.ambient
    assert ("dnsProviders.d.credentials: ambient credentials are supported for lexicon "
            "providers route53 only") in _error(
        {"d": {"type": "lexicon", "provider": "cloudflare", "credentials": "ambient"}})
    assert "dnsProviders.d.credentials: must be a mapping" in _error(
        {"d": {"type": "lexicon", "provider": "route53", "credentials": "environment"}})
    # The chart's schema (generated from the same models) takes it too, and only that word.
    schema = jsonschema.Draft7Validator(config_schema())
    doc = {"issuers": {"le": {"directory": "https://acme.example/dir"}}, "dnsProviders": {
        "r53": {"type": "lexicon", "provider": "route53", "credentials": "ambient"}}}
    assert schema.is_valid(doc)
    doc["dnsProviders"]["r53"]["credentials"] = "environment"
    assert not schema.is_valid(doc)


def test_route53_without_credentials_is_refused_instead_of_reading_the_environment() -> None:
    assert ("dnsProviders.d.credentials: route53 needs auth_access_key and auth_access_secret "
            "from Secrets, or `credentials: ambient`") in _error(
        {"d": {"type": "lexicon", "provider": "route53"}})


def test_propagation_mode_and_recursive_nameservers() -> None:
    default = _config({}).solver
    assert default.dns01.propagation_mode is PropagationMode.AUTHORITATIVE
    assert default.dns01.recursive_nameservers == ()
    assert default.order_timeout == timedelta(seconds=120)
    solver = _config({}, solver={"orderTimeout": 300, "dns01": {
        "propagationTimeout": 900, "propagation": {
            "mode": "recursive", "nameservers": ["10.0.0.10", "10.0.0.11:5353", "[fd00::a]"]}},
    }).solver
    assert solver.order_timeout == timedelta(seconds=300)
    assert solver.dns01.propagation_timeout == timedelta(seconds=900)  # no cap in the config
    assert solver.dns01.propagation_mode is PropagationMode.RECURSIVE
    assert solver.dns01.recursive_nameservers == ("10.0.0.10:53", "10.0.0.11:5353",
                                                  "[fd00::a]:53")


@pytest.mark.parametrize(("solver", "message"), [
    ({"dns01": {"propagation": {"mode": "stub"}}},
     "solver.dns01.propagation.mode: must be one of authoritative, recursive, got 'stub'"),
    ({"dns01": {"propagation": {"nameservers": ["10.0.0.10"]}}},
     "solver.dns01.propagation.nameservers: is only used with mode: recursive"),
    ({"dns01": {"propagation": {"mode": "recursive", "nameservers": ["a b:53"]}}},
     "solver.dns01.propagation.nameservers[0]: must be host or host:port"),
    ({"dns01": {"propagation": {"mode": "recursive", "nameservers": ["10.0.0.1:99999"]}}},
     "solver.dns01.propagation.nameservers[0]: port out of range"),
    ({"dns01": {"propagation": {"resolvers": []}}},
     "solver.dns01.propagation.resolvers: unknown field"),
    ({"orderTimeout": 3600}, "solver.orderTimeout: must be at most 600 seconds"),
    ({"orderTimeout": 0}, "solver.orderTimeout: must be a positive number of seconds"),
])
def test_solver_errors_name_the_path(solver: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config({}, solver=solver)
    assert message in str(info.value)


def test_every_provider_type_has_settings_and_a_builder() -> None:
    """The two registrations of a provider type (its settings in the config, its builder in
    the adapters) name the same types."""
    from certbotk8s.adapters.dns.registry import REGISTRY
    from certbotk8s.core.config.dns_providers import PROVIDER_SETTINGS

    assert set(REGISTRY) == set(PROVIDER_SETTINGS)
