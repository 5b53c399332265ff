"""The `dnsProviders` section of the configuration: one entry per DNS-01 provider.

Every provider has a `type` with its own settings (one module each in
core/config/providers/, registered in `PROVIDER_SETTINGS` below), and the same scope and
propagation settings:

- `zones`: the zones it may write in (the record name after CNAME following must lie inside
  one); empty means any zone.
- `namespaces`: the namespaces whose sources may use it; absent means every namespace.
- `followCname`: follow a CNAME at `_acme-challenge.<host>` to the name really written (off
  unless configured: a CNAME is tenant-controlled DNS pointing our credentials elsewhere).
- `resolver` (`host:port`) for the CNAME/SOA/NS lookups, `nameserverPort` of the
  authoritative servers asked by the propagation check.

In the file the type's keys sit beside the common ones; here they are `settings`. Credentials
are never in the file: each is a `secretRef` to one key of a Kubernetes Secret (or, for
lexicon's route53, `credentials: ambient`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from certbotk8s.core.config.fields import (
    EMPTY_IF_NULL,
    SECTION,
    Endpoint,
    Flag,
    Namespaces,
    Port,
    SecretKeyRef,
    Section,
    Text,
    Zones,
    read_as,
    whole,
)
from certbotk8s.core.config.providers.command import ExecConfig
from certbotk8s.core.config.providers.lexicon import AMBIENT, AMBIENT_PROVIDERS, LexiconConfig
from certbotk8s.core.config.providers.rfc2136 import TSIG_ALGORITHMS, Rfc2136Config
from certbotk8s.core.config.providers.webhook import WebhookConfig

__all__ = ["AMBIENT", "AMBIENT_PROVIDERS", "DNS_PROVIDER_TYPES", "PROVIDER_SETTINGS",
           "TSIG_ALGORITHMS", "DnsProviderConfig", "ExecConfig", "LexiconConfig",
           "ProviderSettings", "Rfc2136Config", "SecretKeyRef", "WebhookConfig"]

ProviderSettings = Rfc2136Config | LexiconConfig | WebhookConfig | ExecConfig
# The registration: a new provider type is its settings module plus one line here (and its
# builder in adapters/dns/registry.py).
PROVIDER_SETTINGS: dict[str, type[ProviderSettings]] = {
    "rfc2136": Rfc2136Config,
    "lexicon": LexiconConfig,
    "webhook": WebhookConfig,
    "exec": ExecConfig,
}
DNS_PROVIDER_TYPES = frozenset(PROVIDER_SETTINGS)
COMMON_KEYS = frozenset({"type", "zones", "namespaces", "followCname", "resolver",
                         "nameserverPort", "ttl"})


def _type(value: str) -> str:
    if value not in PROVIDER_SETTINGS:
        known = ", ".join(sorted(PROVIDER_SETTINGS))
        raise ValueError(f"unknown provider type {value!r} (known: {known})")
    return value


def _settings(value: Any, info: ValidationInfo) -> Any:
    kind = info.data.get("type")
    if not isinstance(value, dict):  # built in Python
        return value
    if kind is None:  # the type is missing or unknown: its error line says so
        return None
    return read_as(PROVIDER_SETTINGS[kind], value, info)


@dataclass(frozen=True, config=SECTION)
class DnsProviderConfig(Section):
    """One configured DNS-01 provider: its type's settings plus scope and lookup settings.
    `name` is its key under `dnsProviders`."""

    type: Annotated[Text, AfterValidator(_type)]
    settings: SkipJsonSchema[Annotated[ProviderSettings | None, PlainValidator(_settings)]] = None
    zones: Zones = ()
    # None: sources of every namespace may use it
    namespaces: Annotated[Namespaces | None, EMPTY_IF_NULL] = None
    follow_cname: Flag = False
    resolver: Endpoint | None = None  # `host:port` for CNAME/SOA/NS lookups; None: system
    nameserver_port: Port | None = None
    ttl: Annotated[int, whole(1, 86400, "must be a whole number of seconds 1-86400")] = 60
    name: SkipJsonSchema[str] = Field(default="", init=False)

    @model_validator(mode="before")
    @classmethod
    def _type_keys_are_settings(cls, data: Any) -> Any:
        """In the file the type's own keys sit beside the common ones."""
        if not isinstance(data, dict):
            return data
        common = {k: v for k, v in data.items() if k in COMMON_KEYS}
        return {**common, "settings": {k: v for k, v in data.items() if k not in COMMON_KEYS}}

    @property
    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return self.settings.secret_refs if self.settings is not None else ()

    def allows_namespace(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def allows_name(self, fqdn: str) -> bool:
        """Whether `fqdn` (a record name, no trailing dot needed) lies in one of `zones`."""
        name = fqdn.rstrip(".").lower()
        return not self.zones or any(name == z or name.endswith("." + z) for z in self.zones)
