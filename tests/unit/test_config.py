"""Configuration file parsing: defaults, every section, and errors that name the bad field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from certbotk8s.core.config.dns_providers import Rfc2136Config
from certbotk8s.core.config.settings import (
    ConfigError,
    EabConfig,
    SecretKeyRef,
    load_config,
    parse_config,
)
from certbotk8s.core.model import ChallengeType, KeyType, SecretRef

FULL = """
controllerNamespace: certs
defaultIssuer: letsencrypt
issuers:
  letsencrypt:
    directory: https://acme-v02.api.letsencrypt.org/directory
    email: ops@corp.test
    profiles: [classic, tlsserver]
  corp:
    directory: https://ca.corp.example:8443/acme/dir
    eab:
      secretRef: {namespace: vault, name: eab, keyIdKey: kid, hmacKey: hmac}
    caBundle: /etc/certbotk8s/corp-ca.pem
    preferredChain: Corp Root
defaultDnsProvider: bind
dnsProviders:
  bind:
    type: rfc2136
    server: 127.0.0.1:5353
    tsig:
      keyName: certbotk8s.
      algorithm: HMAC-SHA512
      secretRef: {name: tsig, key: secret}
    nameserverPort: 5353
    resolver: 127.0.0.1
  v6:
    type: rfc2136
    server: "[2001:db8::53]"
    tsig: {keyName: k., secretRef: {namespace: dns, name: tsig6, key: s}}
istio:
  gatewayNamespace: gateways
  allowedSourceNamespaces: [team-b, team-a]
defaultCertificate:
  hosts: ["*.Apps.Example.com", apps.example.com]
  secret: {namespace: ingress-nginx, name: default-tls}
  challenge: dns-01
  keyType: ecdsa-p384
solver:
  http01:
    pathType: Prefix
    selfCheck: false
    port: 9000
    listenAddress: 127.0.0.1
    solverService: solver
    solverServicePort: 8080
    selfCheckPort: 5002
    selfCheckResolver: 127.0.0.1:5353
  dns01: {propagationTimeout: 120, pollInterval: 2.5}
renewal:
  renewBefore: 720h
  keyType: rsa-4096
"""


def test_full_file() -> None:
    config = load_config(FULL)
    assert config.controller_namespace == "certs"
    assert config.default_issuer == "letsencrypt"
    le = config.issuers["letsencrypt"]
    assert le.email == "ops@corp.test"
    assert le.profiles == ("classic", "tlsserver")
    assert le.eab is None
    corp = config.issuers["corp"]
    assert corp.eab == EabConfig(namespace="vault", name="eab", key_id_key="kid", hmac_key="hmac")
    assert corp.ca_bundle == "/etc/certbotk8s/corp-ca.pem"
    assert corp.preferred_chain == "Corp Root"
    bind = config.dns_providers["bind"].settings
    assert isinstance(bind, Rfc2136Config)
    assert (bind.server_host, bind.server_port) == ("127.0.0.1", 5353)
    assert bind.tsig_algorithm == "hmac-sha512"
    assert bind.tsig_key_name == "certbotk8s."
    assert bind.tsig_secret == SecretKeyRef(namespace="certs", name="tsig", key="secret")
    assert config.dns_providers["bind"].nameserver_port == 5353
    assert config.dns_providers["bind"].resolver == "127.0.0.1:53"
    v6 = config.dns_providers["v6"].settings
    assert isinstance(v6, Rfc2136Config)
    assert (v6.server_host, v6.server_port) == ("2001:db8::53", 53)
    assert v6.tsig_algorithm == "hmac-sha256"
    assert v6.tsig_secret.namespace == "dns"
    assert config.dns_providers["v6"].resolver is None
    assert config.default_dns_provider == "bind"
    assert config.istio.gateway_namespace == "gateways"
    assert config.istio.allowed_source_namespaces == ("team-a", "team-b")
    dc = config.default_certificate
    assert dc is not None
    assert dc.hosts == ("*.apps.example.com", "apps.example.com")
    assert dc.secret == SecretRef("ingress-nginx", "default-tls")
    assert dc.issuer == "letsencrypt"
    assert dc.challenge is ChallengeType.DNS01
    assert dc.dns_provider == "bind"  # defaultDnsProvider
    assert dc.key_type is KeyType.ECDSA_P384
    assert config.solver.http01.path_type == "Prefix"
    assert config.solver.http01.self_check is False
    assert config.solver.http01.port == 9000
    assert config.solver.http01.listen_address == "127.0.0.1"
    assert config.solver.http01.solver_service == "solver"
    assert config.solver.http01.solver_service_port == 8080
    assert config.solver.http01.self_check_port == 5002
    assert config.solver.http01.self_check_resolver == "127.0.0.1:5353"
    assert config.solver.dns01.propagation_timeout == timedelta(seconds=120)
    assert config.solver.dns01.poll_interval == timedelta(seconds=2.5)
    assert config.renewal.renew_before == timedelta(hours=720)
    assert config.renewal.key_type is KeyType.RSA_4096


def test_minimal_file_defaults() -> None:
    config = load_config("issuers: {le: {directory: 'https://acme.example/dir'}}")
    assert config.default_issuer == "le"
    assert config.controller_namespace == "certbotk8s"
    assert config.istio.gateway_namespace == "istio-system"
    assert config.istio.allowed_source_namespaces == ()
    assert config.dns_providers == {}
    assert config.default_dns_provider is None
    assert config.default_certificate is None
    assert config.solver.http01.path_type == "ImplementationSpecific"
    assert config.solver.http01.self_check is True
    assert config.solver.http01.port == 8089
    assert config.solver.http01.listen_address == "0.0.0.0"
    assert config.solver.http01.solver_service == "certbotk8s-solver"
    assert config.solver.http01.solver_service_port == 80
    assert config.solver.http01.self_check_port == 80
    assert config.solver.http01.self_check_resolver is None
    assert config.solver.dns01.propagation_timeout == timedelta(seconds=300)
    assert config.renewal.renew_before is None
    assert config.renewal.key_type is KeyType.ECDSA_P256


def test_eab_and_tsig_secrets_default_to_the_controller_namespace() -> None:
    config = load_config(FULL.replace("namespace: vault, ", ""))
    assert config.issuers["corp"].eab is not None
    assert config.issuers["corp"].eab.namespace == "certs"


def _base(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"issuers": {"pebble": {"directory": "https://pebble:14000/dir"}}}
    data.update(extra)
    return data


def _error(data: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_default_certificate_challenge_follows_dns_provider() -> None:
    providers = {
        "bind": {
            "type": "rfc2136",
            "server": "ns1",
            "tsig": {"keyName": "k.", "secretRef": {"name": "t", "key": "k"}},
        }
    }
    wild = {"hosts": ["*.apps.example.com"], "secret": {"namespace": "a", "name": "b"}}
    config = parse_config(
        _base(dnsProviders=providers, defaultCertificate={**wild, "dnsProvider": "bind"})
    )
    assert config.default_certificate is not None
    assert config.default_certificate.challenge is ChallengeType.DNS01
    assert config.default_certificate.dns_provider == "bind"
    config = parse_config(
        _base(
            dnsProviders=providers,
            defaultDnsProvider="bind",
            defaultCertificate={**wild, "challenge": "dns-01"},
        )
    )
    assert config.default_certificate is not None
    assert config.default_certificate.dns_provider == "bind"
    message = _error(_base(defaultCertificate=wild))
    assert "defaultCertificate.challenge: wildcard hosts need challenge dns-01" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "issuers: at least one issuer is required"),
        ({"issuers": {}}, "issuers: at least one issuer is required"),
        ([], "<root>: must be a mapping"),
        (_base(extra=1), "extra: unknown field"),
        (
            {"issuers": {"pebble": {"directory": "http://pebble/dir"}}},
            "issuers.pebble.directory: must be an https URL",
        ),
        ({"issuers": {"pebble": {}}}, "issuers.pebble.directory: is required"),
        (
            {"issuers": {"pebble": {"directory": "https://p/d", "dir": 1}}},
            "issuers.pebble.dir: unknown field",
        ),
        (
            {"issuers": {"pebble": {"directory": "https://p/d", "email": "nobody"}}},
            "issuers.pebble.email: not an email address",
        ),
        (
            {"issuers": {"pebble": {"directory": "https://p/d", "caBundle": "ca.pem"}}},
            "issuers.pebble.caBundle: must be an absolute file path",
        ),
        (
            {"issuers": {"pebble": {"directory": "https://p/d", "eab": {"hmac": "x"}}}},
            "issuers.pebble.eab.hmac: unknown field",
        ),
        (
            {
                "issuers": {
                    "pebble": {
                        "directory": "https://p/d",
                        "eab": {"secretRef": {"name": "e", "keyIdKey": "k"}},
                    }
                }
            },
            "issuers.pebble.eab.secretRef.hmacKey: is required",
        ),
        ({"issuers": {"Pebble!": {"directory": "https://p/d"}}}, "issuers.Pebble!: issuer names"),
        (
            {"issuers": {"a": {"directory": "https://a/d"}, "b": {"directory": "https://b/d"}}},
            "defaultIssuer: is required when more than one issuer",
        ),
        (_base(defaultIssuer="other"), "defaultIssuer: names no configured issuer"),
        (_base(controllerNamespace="Cert_Bot"), "controllerNamespace: 'Cert_Bot' is not a valid"),
        (_base(dnsProviders={"d": {"type": "route53"}}), "dnsProviders.d.type: unknown provider"),
        (
            _base(
                dnsProviders={
                    "d": {
                        "type": "rfc2136",
                        "server": "ns:99999",
                        "tsig": {"keyName": "k", "secretRef": {"name": "t", "key": "k"}},
                    }
                }
            ),
            "dnsProviders.d.server: port out of range",
        ),
        (
            _base(dnsProviders={"d": {"type": "rfc2136", "server": "ns1"}}),
            "dnsProviders.d.tsig: is required",
        ),
        (
            _base(
                dnsProviders={
                    "d": {
                        "type": "rfc2136",
                        "server": "ns1",
                        "tsig": {"keyName": "k", "secret": "c2VjcmV0"},
                    }
                }
            ),
            "dnsProviders.d.tsig.secret: unknown field",
        ),
        (
            _base(
                dnsProviders={
                    "d": {
                        "type": "rfc2136",
                        "server": "ns1",
                        "tsig": {
                            "keyName": "k",
                            "algorithm": "hmac-sha3",
                            "secretRef": {"name": "t", "key": "k"},
                        },
                    }
                }
            ),
            "dnsProviders.d.tsig.algorithm: unknown 'hmac-sha3'",
        ),
        (
            _base(
                dnsProviders={
                    "d": {
                        "type": "rfc2136",
                        "server": "ns1",
                        "nameserverPort": 0,
                        "tsig": {"keyName": "k", "secretRef": {"name": "t", "key": "k"}},
                    }
                }
            ),
            "dnsProviders.d.nameserverPort: must be a port number",
        ),
        (_base(defaultDnsProvider="nope"), "defaultDnsProvider: names no configured DNS"),
        (_base(istio={"gatewayNamespace": "Istio"}), "istio.gatewayNamespace: 'Istio'"),
        (
            _base(istio={"allowedSourceNamespaces": ["ok", "Not_OK"]}),
            "istio.allowedSourceNamespaces[1]: 'Not_OK'",
        ),
        (
            _base(istio={"allowedSourceNamespaces": "team-a"}),
            "istio.allowedSourceNamespaces: must be a list",
        ),
        (_base(solver={"http01": {"pathType": "Regex"}}), "solver.http01.pathType: must be one of"),
        (_base(solver={"http01": {"selfCheck": "yes"}}), "solver.http01.selfCheck: must be true"),
        (
            _base(solver={"http01": {"selfCheckResolver": "a:b:c"}}),
            "solver.http01.selfCheckResolver: must be host or host:port",
        ),
        (
            _base(solver={"http01": {"solverService": "Solver_Svc"}}),
            "solver.http01.solverService: 'Solver_Svc' is not a valid Service name",
        ),
        (_base(solver={"http01": {"selfCheckPort": 70000}}), "solver.http01.selfCheckPort: must"),
        (_base(solver={"dns01": {"pollInterval": -1}}), "solver.dns01.pollInterval: must be a"),
        (_base(renewal={"renewBefore": "30"}), "renewal.renewBefore: '30' is not a duration"),
        (_base(renewal={"keyType": "dsa"}), "renewal.keyType: unknown key type 'dsa'"),
        (
            _base(defaultCertificate={"secret": {"namespace": "a", "name": "b"}}),
            "defaultCertificate.hosts: at least one host is required",
        ),
        (
            _base(
                defaultCertificate={
                    "hosts": ["ok.example.com", "localhost"],
                    "secret": {"namespace": "a", "name": "b"},
                }
            ),
            "defaultCertificate.hosts[1]: invalid host name 'localhost'",
        ),
        (
            _base(defaultCertificate={"hosts": ["a.example.com"]}),
            "defaultCertificate.secret: is required",
        ),
        (
            _base(defaultCertificate={"hosts": ["a.example.com"], "secret": {"name": "b"}}),
            "defaultCertificate.secret.namespace: is required",
        ),
        (
            _base(
                defaultCertificate={
                    "hosts": ["a.example.com"],
                    "issuer": "x",
                    "secret": {"namespace": "a", "name": "b"},
                }
            ),
            "defaultCertificate.issuer: names no configured issuer",
        ),
        (
            _base(
                defaultCertificate={
                    "hosts": ["a.example.com"],
                    "challenge": "dns-01",
                    "secret": {"namespace": "a", "name": "b"},
                }
            ),
            "defaultCertificate.challenge: dns-01 needs dnsProvider",
        ),
        (
            _base(
                defaultCertificate={
                    "hosts": ["a.example.com"],
                    "profile": "weird",
                    "secret": {"namespace": "a", "name": "b"},
                }
            ),
            "defaultCertificate.profile: issuer 'pebble' has no profile 'weird'",
        ),
    ],
)
def test_errors_name_the_field(data: object, expected: str) -> None:
    assert expected in _error(data)


def test_all_errors_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "issuers": {"p": {"directory": "ftp://x"}},
                "istio": {"typo": 1},
                "renewal": {"renewBefore": "x"},
            }
        )
    assert len(info.value.errors) == 3
    assert info.value.errors[0].startswith("issuers.p.directory:")


def test_bad_yaml() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("issuers: [unclosed")


def test_empty_file_needs_an_issuer() -> None:
    with pytest.raises(ConfigError, match="issuers: at least one issuer"):
        load_config("")


def test_profiles_allowed_by_issuer() -> None:
    config = load_config(FULL)
    le = config.issuers["letsencrypt"]
    assert le.allows_profile("classic")
    assert not le.allows_profile("shortlived")  # listed profiles: exactly those (finding 6)
    corp = config.issuers["corp"]
    assert corp.allows_profile("shortlived")  # none listed: the well-known ones
    assert not corp.allows_profile("corp-special")


def test_issuer_default_profile_is_used_when_a_source_names_none() -> None:
    """defaultProfile fills in for sources without certbotk8s.io/profile; it must be valid."""
    from certbotk8s.core.model import SourceKind
    from certbotk8s.core.sources.annotations import parse_source_options

    base = {"issuers": {"ca": {"directory": "https://ca.example/dir",
                               "profiles": ["default"], "defaultProfile": "default"}}}
    config = parse_config(base)
    options, errors = parse_source_options({"certbotk8s.io/enabled": "true"}, config,
                                           SourceKind.INGRESS)
    assert not errors and options is not None and options.profile == "default"
    named, errors = parse_source_options({"certbotk8s.io/enabled": "true",
                                          "certbotk8s.io/profile": "shortlived"}, config,
                                         SourceKind.INGRESS)
    assert named is None and [e.reason for e in errors] == ["ProfileNotAllowed"]
    bad = {"issuers": {"ca": {"directory": "https://ca.example/dir", "defaultProfile": "nope"}}}
    with pytest.raises(ConfigError, match=r"issuers\.ca\.defaultProfile"):
        parse_config(bad)


def test_example_contact_is_refused_for_letsencrypt_production_and_warned_elsewhere() -> None:
    prod = "issuers: {le: {directory: 'https://acme-v02.api.letsencrypt.org/directory', " \
           "email: ops@example.com}}"
    with pytest.raises(ConfigError) as refused:
        load_config(prod)
    assert refused.value.errors[0].startswith("issuers.le.email: Let's Encrypt refuses")
    staging = prod.replace("acme-v02", "acme-staging-v02")
    staging = staging.replace("example.com", "mail.example.org")
    config = load_config(staging)
    assert config.warnings == (
        "issuers.le.email: 'ops@mail.example.org' is an example address; "
        "CAs such as Let's Encrypt refuse it",)
    assert load_config(prod.replace("example.com", "corp.test")).warnings == ()


def test_controller_namespace_defaults_to_the_given_namespace() -> None:
    text = "issuers: {le: {directory: 'https://acme.test/dir'}}"
    assert load_config(text).controller_namespace == "certbotk8s"
    assert load_config(text, "tls-system").controller_namespace == "tls-system"
    assert load_config("controllerNamespace: x\n" + text, "tls-system").controller_namespace == "x"


def test_allow_any_host_is_the_explicit_form_of_no_pattern_check() -> None:
    assert parse_config(_base(tenants={"allowAnyHost": True})).tenants.host_patterns is None
    assert parse_config(_base(tenants={"allowAnyHost": False})).tenants.host_patterns == {}
    # The chart's default `hostPatterns: {}` beside `allowAnyHost: true` is no conflict.
    assert parse_config(_base(tenants={"allowAnyHost": True, "hostPatterns": {}})
                        ).tenants.host_patterns is None
    # Left out, both keys keep the behaviour from before allowAnyHost existed: no pattern check.
    assert parse_config(_base()).tenants.host_patterns is None
    assert "tenants.allowAnyHost: must be true or false" in _error(
        _base(tenants={"allowAnyHost": "yes"}))
    assert "tenants.allowAnyHost: true allows every host" in _error(
        _base(tenants={"allowAnyHost": True, "hostPatterns": {"a": ["a.example.com"]}}))


def test_python_names_are_not_keys_of_the_file() -> None:
    """The file speaks camelCase only: the models' snake_case names are unknown keys there."""
    message = _error(_base(solver={"http01": {"self_check": False}}))
    assert "solver.http01.self_check: unknown field (known: listenAddress, pathType, port," \
           in message
    assert "warnings: unknown field" in _error(_base(warnings=["x"]))
    assert "issuers.pebble.name: unknown field" in _error(
        {"issuers": {"pebble": {"directory": "https://p/d", "name": "other"}}})
    assert "dnsProviders.d.ambient: unknown field" in _error(_base(dnsProviders={"d": {
        "type": "lexicon", "provider": "route53", "ambient": True}}))


def test_a_key_without_a_value_counts_as_left_out_but_a_scope_stays_closed() -> None:
    config = load_config("""
controllerNamespace:
issuers:
  le:
    directory: https://acme.example/dir
    email:
    namespaces:
    profiles:
solver:
  http01:
    port:
tenants:
  hostPatterns:
""", "tls-system")
    assert config.controller_namespace == "tls-system"
    assert config.issuers["le"].email is None
    assert config.solver.http01.port == 8089
    # A scope written without a value lets nothing in (as before), it does not open up:
    assert config.issuers["le"].namespaces == () and config.issuers["le"].profiles == ()
    assert config.tenants.host_patterns == {}


def test_a_reference_between_sections_is_checked_once_the_named_section_is_valid() -> None:
    """A broken issuer is reported; a reference to issuers waits until they are valid."""
    broken = {"issuers": {"a": {"directory": "ftp://a"}, "b": {"directory": "https://b/d"}},
              "defaultIssuer": "nope", "istio": {"gatewayNamespace": "Bad_NS"}}
    with pytest.raises(ConfigError) as info:
        parse_config(broken)
    assert [e.split(":")[0] for e in info.value.errors] == [
        "issuers.a.directory", "istio.gatewayNamespace"]
    broken["issuers"]["a"]["directory"] = "https://a/d"  # type: ignore[index]
    assert "defaultIssuer: names no configured issuer: 'nope'" in _error(broken)


def test_settings_are_frozen_and_hashable() -> None:
    import dataclasses

    config = load_config(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.solver.http01.port = 1  # type: ignore[misc]
    assert hash(config.solver) == hash(load_config(FULL).solver)
    assert dataclasses.replace(config.renewal, key_type=KeyType.RSA_2048).key_type \
        is KeyType.RSA_2048


def test_one_mistake_is_one_line() -> None:
    """What follows from a bad value is not reported again where it is used."""
    ref = {"name": "t", "key": "k"}
    bad_namespace = _base(controllerNamespace="Bad_NS", dnsProviders={"d": {
        "type": "rfc2136", "server": "ns1", "tsig": {"keyName": "k.", "secretRef": ref}}})
    with pytest.raises(ConfigError) as info:
        parse_config(bad_namespace)
    assert info.value.errors == ("controllerNamespace: 'Bad_NS' is not a valid namespace name",)
    wildcard = {"name": "w", "hosts": ["*.example.com"], "challenge": "dns-01",
                "secret": {"namespace": "a", "name": "b"}}
    with pytest.raises(ConfigError) as info:
        parse_config(_base(defaultDnsProvider="nope", certificates=[wildcard]))
    assert [e.split(":")[0] for e in info.value.errors] == ["defaultDnsProvider"]
    assert "certificates.w.hosts: at least one host is required" in _error(_base(
        certificates=[{k: v for k, v in wildcard.items() if k != "hosts"}]))
    assert "defaultIssuer: must be a non-empty string" in _error(_base(defaultIssuer=""))
