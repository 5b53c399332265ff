"""The dnsProviders section: every provider type parsed, scope fields, errors naming the path."""

from __future__ import annotations

from typing import Any

import pytest

from certbotk8s.core.config.dns_providers import (
    ExecConfig,
    LexiconConfig,
    SecretKeyRef,
    WebhookConfig,
)
from certbotk8s.core.config.settings import ConfigError, parse_config
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
