"""The `certificates` section: certificates the config asks for itself (standalone).

Each entry is one certificate not tied to an Ingress or Gateway (a wildcard several ingresses
share, a database or MQTT endpoint): a `name` (DNS-1123 label, unique), `hosts`, the `secret`
it is written to (`namespace/name`, written there as-is: the controller config's row of
DESIGN.md's table) and optionally `issuer`, `challenge`, `dnsProvider`, `keyType`, `profile`
and `renewBefore`, checked like the annotations of a source. `defaultCertificate` is an alias
for one entry named `defaultCertificate` (the name it always had in Events and records).

Every error names the entry (`certificates.web.hosts[1]: ...`, or `certificates[2]` while it
has no valid name); two entries (the alias included) may not name the same Secret.
Parsing is done with the collecting parser of `settings.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from certbotk8s.core.config import shape
from certbotk8s.core.config.dns_providers import DnsProviderConfig
from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.model import ChallengeType, KeyType, SecretRef
from certbotk8s.core.sources.names import (
    InvalidHostname,
    is_dns1123_label,
    is_wildcard,
    normalize_host,
)

if TYPE_CHECKING:
    from certbotk8s.core.config.settings import IssuerConfig, _Parser

DEFAULT_CERTIFICATE_NAME = "defaultCertificate"  # the alias's entry; not a DNS-1123 label


@dataclass(frozen=True)
class CertificateConfig:
    """One certificate the config asks for. Fields left out take the config's defaults
    (`key_type`, `profile`, `renew_before` None: `renewal.*` and the issuer's)."""

    name: str
    hosts: tuple[str, ...]
    secret: SecretRef
    issuer: str
    challenge: ChallengeType
    dns_provider: str | None = None
    key_type: KeyType | None = None
    profile: str | None = None
    renew_before: timedelta | None = None


@dataclass(frozen=True)
class _Defaults:
    issuers: Mapping[str, IssuerConfig]
    issuer: str
    providers: Mapping[str, DnsProviderConfig]
    provider: str | None


def parse_certificates(p: _Parser, listed: object, alias: object,
                       issuers: Mapping[str, IssuerConfig], default_issuer: str,
                       providers: Mapping[str, DnsProviderConfig], default_provider: str | None
                       ) -> tuple[CertificateConfig, ...]:
    """`certificates` (a list) and `defaultCertificate` (one mapping) as one tuple, the alias
    first."""
    defaults = _Defaults(issuers, default_issuer, providers, default_provider)
    result: list[tuple[str, CertificateConfig]] = []
    if alias is not None:
        entry = _entry(p, alias, DEFAULT_CERTIFICATE_NAME, DEFAULT_CERTIFICATE_NAME, defaults)
        result.append((DEFAULT_CERTIFICATE_NAME, entry))
    if listed is not None and not isinstance(listed, list):
        p.error("certificates", f"must be a list, got {type(listed).__name__}")
        listed = []
    names: set[str] = set()
    for index, raw in enumerate(listed or ()):
        path = f"certificates[{index}]"
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not is_dns1123_label(name):
            p.error(f"{path}.name", "is required: a name of lower-case letters, digits and "
                                    f"'-' (a DNS-1123 label), got {name!r}")
            name = ""
        elif name in names:
            p.error(f"{path}.name", f"{name!r} names another entry too")
        else:
            names.add(name)
            path = f"certificates.{name}"
        result.append((path, _entry(p, raw, path, name, defaults, named=True)))
    owner: dict[SecretRef, str] = {}
    for path, entry in result:
        if not entry.secret.name:
            continue
        if entry.secret in owner:
            p.error(f"{path}.secret", f"{entry.secret} is already the Secret of "
                                      f"{owner[entry.secret]}")
        else:
            owner[entry.secret] = path
    return tuple(entry for _, entry in result)


def _entry(p: _Parser, value: object, path: str, name: str, d: _Defaults,
           named: bool = False) -> CertificateConfig:
    m = p.mapping(value, path,
                  shape.keys(shape.CERTIFICATE if named else shape.DEFAULT_CERTIFICATE))
    hosts = _hosts(p, m, path)
    secret = _secret(p, m, path)
    issuer = p.string(m, "issuer", path) or d.issuer
    if "issuer" in m and issuer not in d.issuers:
        p.error(f"{path}.issuer", f"names no configured issuer: {issuer!r}")
    dns_provider = p.string(m, "dnsProvider", path)
    if dns_provider is not None and dns_provider not in d.providers:
        p.error(f"{path}.dnsProvider", f"names no configured DNS provider: {dns_provider!r}")
    challenge = p.challenge(m, "challenge", path)
    if challenge is None:
        challenge = ChallengeType.DNS01 if dns_provider else ChallengeType.HTTP01
    if challenge is ChallengeType.DNS01:
        dns_provider = dns_provider or d.provider
        if dns_provider is None:
            p.error(f"{path}.challenge", "dns-01 needs dnsProvider or a defaultDnsProvider")
    elif dns_provider is not None:
        p.error(f"{path}.dnsProvider", "is only used with challenge dns-01")
    if challenge is ChallengeType.HTTP01 and any(is_wildcard(h) for h in hosts):
        p.error(f"{path}.challenge", "wildcard hosts need challenge dns-01")
    profile = p.string(m, "profile", path)
    issuer_config = d.issuers.get(issuer)
    if profile is not None and issuer_config and not issuer_config.allows_profile(profile):
        p.error(f"{path}.profile", f"issuer {issuer!r} has no profile {profile!r}")
    return CertificateConfig(
        name=name, hosts=hosts, secret=secret, issuer=issuer, challenge=challenge,
        dns_provider=dns_provider, key_type=p.key_type(m, "keyType", path), profile=profile,
        renew_before=_renew_before(p, m, path),
    )


def _hosts(p: _Parser, m: dict[str, object], path: str) -> tuple[str, ...]:
    raw_hosts = p.string_list(m, "hosts", path)
    if not raw_hosts and isinstance(m.get("hosts"), list | None):
        p.error(f"{path}.hosts", "at least one host is required")
    hosts: set[str] = set()
    for index, raw in enumerate(raw_hosts):
        try:
            hosts.add(normalize_host(raw))
        except InvalidHostname as e:
            p.error(f"{path}.hosts[{index}]", str(e))
    return tuple(sorted(hosts))


def _secret(p: _Parser, m: dict[str, object], path: str) -> SecretRef:
    if "secret" not in m:
        p.error(f"{path}.secret", "is required")
        return SecretRef("", "")
    secret_path = f"{path}.secret"
    s = p.mapping(m.get("secret"), secret_path,
                  shape.keys(shape.section(shape.DEFAULT_CERTIFICATE, "secret")))
    namespace = p.string(s, "namespace", secret_path, required=True) or ""
    if namespace and not is_dns1123_label(namespace):
        p.error(f"{secret_path}.namespace", f"{namespace!r} is not a valid namespace name")
    return SecretRef(namespace, p.secret_name(s, secret_path))


def _renew_before(p: _Parser, m: dict[str, object], path: str) -> timedelta | None:
    text = p.string(m, "renewBefore", path)
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        p.error(f"{path}.renewBefore", str(e))
        return None
