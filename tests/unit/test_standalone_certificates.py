"""Standalone certificates: the `certificates` list (and its `defaultCertificate` alias) parsed,
checked with errors that name the entry, and desired by discovery like any source's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from certbotk8s.core.config.certificates import DEFAULT_CERTIFICATE_NAME, CertificateConfig
from certbotk8s.core.config.settings import ConfigError
from certbotk8s.core.model import ChallengeType, KeyType, SecretRef, SourceKind
from certbotk8s.core.renewal.plan import ActionKind, plan
from certbotk8s.core.sources.discovery import config_certificate_source, discover

from .cluster import FakeController, World
from .factories import T0, ingress, make_config, tls_entry

WILDCARD: dict[str, Any] = {
    "name": "apps-wildcard", "hosts": ["*.apps.example.com", "apps.example.com"],
    "secret": {"namespace": "ingress-nginx", "name": "wildcard-tls"}, "dnsProvider": "bind",
}
MQTT: dict[str, Any] = {
    "name": "mqtt", "hosts": ["MQTT.example.com"],
    "secret": {"namespace": "messaging", "name": "mqtt-tls"}, "issuer": "staging",
    "keyType": "rsa-2048", "renewBefore": "240h",
}


def _error(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(**overrides)
    return str(info.value)


def test_each_entry_is_parsed_with_the_config_defaults_for_what_it_leaves_out() -> None:
    config = make_config(certificates=[WILDCARD, MQTT])
    wildcard, mqtt = config.certificates
    assert wildcard == CertificateConfig(
        name="apps-wildcard", hosts=("*.apps.example.com", "apps.example.com"),
        secret=SecretRef("ingress-nginx", "wildcard-tls"), issuer="le",
        challenge=ChallengeType.DNS01, dns_provider="bind")
    assert mqtt == CertificateConfig(
        name="mqtt", hosts=("mqtt.example.com",), secret=SecretRef("messaging", "mqtt-tls"),
        issuer="staging", challenge=ChallengeType.HTTP01, key_type=KeyType.RSA_2048,
        renew_before=timedelta(hours=240))
    assert config.default_certificate is None


def test_default_certificate_is_an_alias_for_one_entry_listed_first() -> None:
    alias = {k: v for k, v in MQTT.items() if k != "name"}
    config = make_config(defaultCertificate=alias, certificates=[WILDCARD])
    assert [c.name for c in config.certificates] == [DEFAULT_CERTIFICATE_NAME, "apps-wildcard"]
    assert config.default_certificate == CertificateConfig(
        name=DEFAULT_CERTIFICATE_NAME, hosts=("mqtt.example.com",),
        secret=SecretRef("messaging", "mqtt-tls"), issuer="staging",
        challenge=ChallengeType.HTTP01, key_type=KeyType.RSA_2048,
        renew_before=timedelta(hours=240))
    assert "defaultCertificate.name: unknown field" in _error(
        defaultCertificate={**alias, "name": "x"})


@pytest.mark.parametrize(("entries", "message"), [
    ("web", "certificates: must be a list, got str"),
    ([{**MQTT, "name": None}], "certificates[0].name: is required"),
    ([{**MQTT, "name": "Not_A_Label"}], "certificates[0].name: is required: a name of"),
    ([MQTT, {**WILDCARD, "name": "mqtt"}], "certificates[1].name: 'mqtt' names another entry"),
    ([{**MQTT, "hosts": []}], "certificates.mqtt.hosts: at least one host is required"),
    ([{**MQTT, "hosts": ["ok.example.com", "bad host"]}],
     "certificates.mqtt.hosts[1]: invalid host name"),
    ([{k: v for k, v in MQTT.items() if k != "secret"}], "certificates.mqtt.secret: is required"),
    ([{**MQTT, "secret": {"name": "x"}}], "certificates.mqtt.secret.namespace: is required"),
    ([{**MQTT, "issuer": "nope"}], "certificates.mqtt.issuer: names no configured issuer"),
    ([{**MQTT, "challenge": "tls-alpn-01"}], "certificates.mqtt.challenge: must be http-01"),
    ([{**MQTT, "hosts": ["*.example.com"]}],
     "certificates.mqtt.challenge: wildcard hosts need challenge dns-01"),
    ([{**MQTT, "dnsProvider": "nope"}], "certificates.mqtt.dnsProvider: names no configured"),
    ([{**MQTT, "challenge": "http-01", "dnsProvider": "bind"}],
     "certificates.mqtt.dnsProvider: is only used with challenge dns-01"),
    ([{**MQTT, "keyType": "dsa"}], "certificates.mqtt.keyType: unknown key type 'dsa'"),
    ([{**MQTT, "profile": "weird"}], "certificates.mqtt.profile: issuer 'staging' has no"),
    ([{**MQTT, "renewBefore": "soon"}], "certificates.mqtt.renewBefore: 'soon' is not a dur"),
    ([{**MQTT, "renewbefore": "1h"}], "certificates.mqtt.renewbefore: unknown field"),
    ([MQTT, {**WILDCARD, "secret": MQTT["secret"]}],
     "certificates.apps-wildcard.secret: messaging/mqtt-tls is already the Secret of "
     "certificates.mqtt"),
])
def test_a_bad_entry_is_a_config_error_naming_it(entries: object, message: str) -> None:
    assert message in _error(certificates=entries)


def test_the_alias_and_an_entry_may_not_share_a_secret() -> None:
    alias = {k: v for k, v in MQTT.items() if k != "name"}
    assert ("certificates.mqtt.secret: messaging/mqtt-tls is already the Secret of "
            "defaultCertificate") in _error(defaultCertificate=alias, certificates=[MQTT])


def test_every_entry_is_desired_where_it_says_with_its_own_source() -> None:
    config = make_config(certificates=[WILDCARD, MQTT], renewal={"keyType": "ecdsa-p384"})
    found = discover([], [], [], [], config)
    assert found.problems == ()
    by_secret = {d.secret: d for d in found.desired}
    wildcard = by_secret[SecretRef("ingress-nginx", "wildcard-tls")]
    mqtt = by_secret[SecretRef("messaging", "mqtt-tls")]
    assert wildcard.source == config_certificate_source(config, "apps-wildcard")
    assert str(mqtt.source) == f"Config/{config.controller_namespace}/mqtt"
    assert {d.source_kind for d in found.desired} == {SourceKind.CONFIG_CERTIFICATE}
    assert wildcard.spec.key_type is KeyType.ECDSA_P384  # renewal.keyType
    assert wildcard.spec.renew_before is None and wildcard.routing is None
    assert (mqtt.spec.issuer, mqtt.spec.key_type, mqtt.spec.renew_before) == (
        "staging", KeyType.RSA_2048, timedelta(hours=240))
    actions = plan(found.desired, {}, T0, {})
    assert {a.kind for a in actions} == {ActionKind.ISSUE}


def test_an_entry_conflicting_with_an_ingress_is_reported_on_both() -> None:
    config = make_config(certificates=[MQTT])
    ing = ingress(namespace="messaging", tls=[tls_entry("mqtt-tls", "other.example.com")])
    found = discover([ing], [], [], [], config)
    assert found.desired == ()
    assert {(p.source.kind, p.reason) for p in found.problems} == {
        ("Config", "SecretConflict"), ("Ingress", "SecretConflict")}


def test_the_controller_issues_each_entry_with_the_order_deadline_the_config_derives() -> None:
    """Two standalone certificates through the real Reconciler and OrderRunner: each is
    written to its Secret; an HTTP-01 order gets `orderTimeout`, a DNS-01 order
    `propagationTimeout` + `orderTimeout` (no fixed 120 s)."""
    config = make_config(certificates=[WILDCARD, MQTT], solver={
        "orderTimeout": 200, "dns01": {"propagationTimeout": 600}})
    world = World(config, T0)
    FakeController(world).settle()
    for ref in (SecretRef("ingress-nginx", "wildcard-tls"), SecretRef("messaging", "mqtt-tls")):
        assert world.cluster.read(ref.namespace, ref.name) is not None, ref
    deadlines = {request.hosts: request.deadline for request in world.acme.requests}
    assert deadlines == {("*.apps.example.com", "apps.example.com"): 800.0,
                         ("mqtt.example.com",): 200.0}
