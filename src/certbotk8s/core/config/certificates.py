"""The `certificates` section: certificates the config asks for itself (standalone).

Each entry is one certificate not tied to an Ingress or Gateway (a wildcard several ingresses
share, a database or MQTT endpoint): a `name` (DNS-1123 label, unique), `hosts`, the `secret`
it is written to (`namespace/name`, written there as-is: the controller config's row of
DESIGN.md's table) and optionally `issuer`, `challenge`, `dnsProvider`, `keyType`, `profile`
and `renewBefore`, checked like the annotations of a source. `defaultCertificate` is an alias
for one entry named `defaultCertificate` (the name it always had in Events and records).

Every error names the entry (`certificates.web.hosts[1]: ...`, or `certificates[2]` while it
has no valid name: see settings.error_lines); two entries (the alias included) may not name the
same Secret. What an entry leaves out is filled in from the config (`resolve`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import InitErrorDetails

from certbotk8s.core.config.choices import CHALLENGES, parse_challenge
from certbotk8s.core.config.dns_providers import DnsProviderConfig
from certbotk8s.core.config.fields import (
    SECTION,
    Duration,
    HostPatterns,
    Namespace,
    SecretName,
    Section,
    Text,
    enum_schema,
    read_as,
    text,
)
from certbotk8s.core.config.issuers import IssuerConfig
from certbotk8s.core.config.sections import KeyTypeField
from certbotk8s.core.model import ChallengeType, SecretRef
from certbotk8s.core.sources.names import is_dns1123_label, is_wildcard

DEFAULT_CERTIFICATE_NAME = "defaultCertificate"  # the alias's entry; not a DNS-1123 label


def _some_host(hosts: tuple[str, ...]) -> tuple[str, ...]:
    if not hosts:
        raise ValueError("at least one host is required")
    return hosts


def _label(value: Any, info: ValidationInfo) -> str:
    if info.context is None and isinstance(value, str):  # built in Python: the alias's name
        return value
    if not isinstance(value, str) or not is_dns1123_label(value):
        raise ValueError("is required: a name of lower-case letters, digits and '-' "
                         f"(a DNS-1123 label), got {value!r}")
    return value


def _challenge(value: Any) -> ChallengeType:
    return value if isinstance(value, ChallengeType) else parse_challenge(text(value), echo=True)


@dataclass(frozen=True, config=SECTION)
class SecretTarget(Section):
    """Where the certificate is written: `namespace/name`, both required."""

    namespace: Namespace
    name: SecretName


def _secret(value: Any, info: ValidationInfo) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    target = read_as(SecretTarget, value, info)
    return SecretRef(target.namespace, target.name)


@dataclass(frozen=True, config=SECTION, kw_only=True)
class DefaultCertificate(Section):
    """One entry without its name (`defaultCertificate`). Left out: `issuer` "" is the
    default issuer; `challenge` dns-01 when it names a dnsProvider, else http-01; `key_type`,
    `profile`, `renew_before` None: `renewal.*` and the issuer's."""

    hosts: Annotated[HostPatterns, AfterValidator(_some_host)]
    secret: Annotated[SecretRef, PlainValidator(_secret, json_schema_input_type=SecretTarget)]
    issuer: Text = ""
    challenge: Annotated[ChallengeType, BeforeValidator(_challenge),
                         enum_schema(*CHALLENGES)] = ChallengeType.HTTP01
    dns_provider: Text | None = None
    key_type: KeyTypeField | None = None
    profile: Text | None = None
    renew_before: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _implied(cls, data: Any) -> Any:
        """No `challenge` in the file: dns-01 when the entry names a DNS provider. No `hosts`:
        checked as an empty list (a default's error would lose the entry's index)."""
        if not isinstance(data, dict):
            return data
        if data.get("challenge") is None:
            data = {**data, "challenge": "dns-01" if data.get("dnsProvider") else "http-01"}
        return {"hosts": [], **data}


@dataclass(frozen=True, config=SECTION, kw_only=True)
class CertificateConfig(DefaultCertificate):
    """One certificate the config asks for (an entry of `certificates`)."""

    name: Annotated[str, BeforeValidator(_label)]


@dataclasses.dataclass(frozen=True)
class Defaults:
    """What entries leave out, from the rest of the config."""

    issuers: Mapping[str, IssuerConfig]
    issuer: str
    providers: Mapping[str, DnsProviderConfig]
    provider: str | None


def resolve(entry: DefaultCertificate, name: str, d: Defaults
            ) -> tuple[CertificateConfig, list[tuple[str, str]]]:
    """`entry` named and completed from `d`, with its (key, message) problems."""
    problems: list[tuple[str, str]] = []
    issuer = entry.issuer or d.issuer
    if entry.issuer and issuer not in d.issuers:
        problems.append(("issuer", f"names no configured issuer: {issuer!r}"))
    provider = entry.dns_provider
    if provider is not None and provider not in d.providers:
        problems.append(("dnsProvider", f"names no configured DNS provider: {provider!r}"))
    if entry.challenge is ChallengeType.DNS01:
        provider = provider or d.provider
        if provider is None:
            problems.append(("challenge", "dns-01 needs dnsProvider or a defaultDnsProvider"))
    elif provider is not None:
        problems.append(("dnsProvider", "is only used with challenge dns-01"))
    if entry.challenge is ChallengeType.HTTP01 and any(is_wildcard(h) for h in entry.hosts):
        problems.append(("challenge", "wildcard hosts need challenge dns-01"))
    issuer_config = d.issuers.get(issuer)
    if (entry.profile is not None and issuer_config is not None
            and not issuer_config.allows_profile(entry.profile)):
        problems.append(("profile", f"issuer {issuer!r} has no profile {entry.profile!r}"))
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.name != "name"}
    resolved = CertificateConfig(**{**fields, "name": name, "issuer": issuer,
                                    "dns_provider": provider})
    return resolved, problems


def problem_lines(problems: Sequence[tuple[tuple[str | int, ...], str]]) -> list[InitErrorDetails]:
    return [InitErrorDetails(type="value_error", loc=loc, input=None,
                             ctx={"error": ValueError(message)}) for loc, message in problems]
