"""The `dnsProviders` section of the configuration: one entry per DNS-01 provider.

Every provider has a `type` (rfc2136, lexicon, webhook, exec) with its own settings, and the
same scope and propagation settings:

- `zones`: the zones it may write in (the record name after CNAME following must lie inside
  one); empty means any zone.
- `namespaces`: the namespaces whose sources may use it; absent means every namespace.
- `followCname`: follow a CNAME at `_acme-challenge.<host>` to the name really written (off
  unless configured: a CNAME is tenant-controlled DNS pointing our credentials elsewhere).
- `resolver` (`host:port`) for the CNAME/SOA/NS lookups, `nameserverPort` of the
  authoritative servers asked by the propagation check.

Credentials are never in the file: each is a `secretRef` to one key of a Kubernetes Secret,
or, for a lexicon provider whose SDK has one (route53), `credentials: ambient`: the process's
own cloud identity. Without `ambient` nothing is read from the process environment.
Parsing is done with the collecting parser of `config.py`; errors name the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from certbotk8s.core.config import shape
from certbotk8s.core.sources.names import is_dns1123_label, is_dns1123_subdomain

if TYPE_CHECKING:
    from certbotk8s.core.config.settings import _Parser

TSIG_ALGORITHMS = frozenset(
    {"hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}
)
DNS_PROVIDER_TYPES = frozenset(shape.DNS_PROVIDER.by_type)
_COMMON_FIELDS = shape.keys(shape.DNS_PROVIDER.common)
_LEXICON_PROVIDER = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_LEXICON_OPTION = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(?::\d+)?(?:/[^\s#]*)?$")


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Kubernetes Secret. `namespace` defaults to the controller's namespace."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True)
class Rfc2136Config:
    """An RFC 2136 primary with a TSIG key whose secret is read from a Secret."""

    server_host: str
    server_port: int
    tsig_key_name: str
    tsig_algorithm: str
    tsig_secret: SecretKeyRef
    timeout: timedelta = timedelta(seconds=10)


AMBIENT = "ambient"
# lexicon providers whose SDK has an ambient credential chain certbotk8s can hand them to:
# route53 (boto3: web identity / IRSA, EKS Pod Identity, ECS and EC2 roles). lexicon's azure
# and googleclouddns providers take explicit keys only.
AMBIENT_PROVIDERS = frozenset({"route53"})


@dataclass(frozen=True)
class LexiconConfig:
    """A dns-lexicon provider by name; `options` are plain, `credentials` come from Secrets,
    or `ambient`: the process's own cloud identity (`credentials: ambient`), and only then."""

    provider: str
    options: tuple[tuple[str, str], ...] = ()
    credentials: tuple[tuple[str, SecretKeyRef], ...] = ()
    ambient: bool = False


@dataclass(frozen=True)
class WebhookConfig:
    """POST {action, fqdn, zone, value} to `url`, bearer token from a Secret when given."""

    url: str
    token: SecretKeyRef | None = None
    timeout: timedelta = timedelta(seconds=10)
    retries: int = 3


@dataclass(frozen=True)
class ExecConfig:
    """Run `command` with the action, FQDN, zone and value in its environment."""

    command: tuple[str, ...]
    timeout: timedelta = timedelta(seconds=60)


ProviderSettings = Rfc2136Config | LexiconConfig | WebhookConfig | ExecConfig


@dataclass(frozen=True)
class DnsProviderConfig:
    """One configured DNS-01 provider: its type's settings plus scope and lookup settings."""

    name: str
    type: str
    settings: ProviderSettings | None
    zones: tuple[str, ...] = ()
    namespaces: tuple[str, ...] | None = None  # None: sources of every namespace may use it
    follow_cname: bool = False
    resolver: str | None = None  # `host:port` for CNAME/SOA/NS lookups; None: system resolver
    nameserver_port: int | None = None
    ttl: int = 60
    secret_refs: tuple[SecretKeyRef, ...] = field(default=(), compare=False)

    def allows_namespace(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def allows_name(self, fqdn: str) -> bool:
        """Whether `fqdn` (a record name, no trailing dot needed) lies in one of `zones`."""
        name = fqdn.rstrip(".").lower()
        return not self.zones or any(name == z or name.endswith("." + z) for z in self.zones)


def parse_dns_providers(p: _Parser, value: object, namespace: str
                        ) -> dict[str, DnsProviderConfig]:
    entries = p.mapping(value, "dnsProviders", None)
    result: dict[str, DnsProviderConfig] = {}
    for name, raw in entries.items():
        path = f"dnsProviders.{name}"
        if not re.match(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$", name):
            p.error(path, "provider names are lower-case letters, digits, '.', '-', '_'")
        kind = None
        if isinstance(raw, dict):
            kind = raw.get("type")
        allowed = _COMMON_FIELDS | _TYPE_FIELDS.get(kind if isinstance(kind, str) else "",
                                                    frozenset())
        m = p.mapping(raw, path, allowed)
        kind_text = p.string(m, "type", path, required=True)
        settings: ProviderSettings | None = None
        if kind_text is not None and kind_text not in DNS_PROVIDER_TYPES:
            known = ", ".join(sorted(DNS_PROVIDER_TYPES))
            p.error(f"{path}.type", f"unknown provider type {kind_text!r} (known: {known})")
        elif kind_text == "rfc2136":
            settings = _rfc2136(p, m, path, namespace)
        elif kind_text == "lexicon":
            settings = _lexicon(p, m, path, namespace)
        elif kind_text == "webhook":
            settings = _webhook(p, m, path, namespace)
        elif kind_text == "exec":
            settings = _exec(p, m, path)
        resolver_host, resolver_port = p.server(m, "resolver", path)
        ttl = m.get("ttl", 60)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 86400:
            p.error(f"{path}.ttl", f"must be a whole number of seconds 1-86400, got {ttl!r}")
            ttl = 60
        result[name] = DnsProviderConfig(
            name=name,
            type=kind_text or "",
            settings=settings,
            zones=_zones(p, m, path),
            namespaces=_namespaces(p, m, path),
            follow_cname=p.boolean(m, "followCname", path, False),
            resolver=_hostport(resolver_host, resolver_port),
            nameserver_port=p.port(m, "nameserverPort", path),
            ttl=ttl,
            secret_refs=_refs(settings),
        )
    return result


_TYPE_FIELDS = {kind: shape.keys(fields) for kind, fields in shape.DNS_PROVIDER.by_type.items()}
_TSIG = shape.section(shape.DNS_PROVIDER.by_type["rfc2136"], "tsig")


def _refs(settings: ProviderSettings | None) -> tuple[SecretKeyRef, ...]:
    if isinstance(settings, Rfc2136Config):
        return (settings.tsig_secret,)
    if isinstance(settings, LexiconConfig):
        return tuple(ref for _, ref in settings.credentials)
    if isinstance(settings, WebhookConfig) and settings.token is not None:
        return (settings.token,)
    return ()


def _zones(p: _Parser, m: dict[str, object], path: str) -> tuple[str, ...]:
    zones: list[str] = []
    for index, zone in enumerate(p.string_list(m, "zones", path)):
        zone = zone.strip().rstrip(".").lower()
        if not is_dns1123_subdomain(zone):
            p.error(f"{path}.zones[{index}]", f"{zone!r} is not a DNS zone name")
        zones.append(zone)
    return tuple(sorted(set(zones)))


def _namespaces(p: _Parser, m: dict[str, object], path: str) -> tuple[str, ...] | None:
    if "namespaces" not in m:
        return None
    names = p.string_list(m, "namespaces", path)
    for index, ns in enumerate(names):
        if not is_dns1123_label(ns):
            p.error(f"{path}.namespaces[{index}]", f"{ns!r} is not a valid namespace name")
    return tuple(sorted(set(names)))


def _secret_ref(p: _Parser, value: object, path: str, namespace: str) -> SecretKeyRef:
    ref = p.mapping(value, path, shape.keys(shape.SECRET_KEY_REF))
    if not ref:
        p.error(path, "must name a Secret: {name: ..., key: ...}")
    return SecretKeyRef(
        namespace=p.secret_namespace(ref, path, namespace),
        name=p.secret_name(ref, path) if ref else "",
        key=p.string(ref, "key", path, required=bool(ref)) or "",
    )


def _timeout(p: _Parser, m: dict[str, object], path: str, default: float) -> timedelta:
    value = p.seconds(m, "timeout", path, timedelta(seconds=default))
    if value > timedelta(minutes=10):
        p.error(f"{path}.timeout", "must be at most 600 seconds")
    return value


def _rfc2136(p: _Parser, m: dict[str, object], path: str, namespace: str) -> Rfc2136Config:
    host, port = p.server(m, "server", path, required=True)
    tsig_path = f"{path}.tsig"
    if "tsig" not in m:
        p.error(tsig_path, "is required")
    tsig = p.mapping(m.get("tsig"), tsig_path, shape.keys(_TSIG))
    key_name = p.string(tsig, "keyName", tsig_path, required=True) or ""
    algorithm = (p.string(tsig, "algorithm", tsig_path) or "hmac-sha256").lower()
    if algorithm not in TSIG_ALGORITHMS:
        known = ", ".join(sorted(TSIG_ALGORITHMS))
        p.error(f"{tsig_path}.algorithm", f"unknown {algorithm!r} (known: {known})")
    ref_path = f"{tsig_path}.secretRef"
    if "secretRef" not in tsig and "tsig" in m:
        p.error(ref_path, "is required (the TSIG secret is read from a Secret)")
    secret = (_secret_ref(p, tsig["secretRef"], ref_path, namespace) if "secretRef" in tsig
              else SecretKeyRef(namespace, "", ""))
    return Rfc2136Config(server_host=host, server_port=port, tsig_key_name=key_name,
                         tsig_algorithm=algorithm, tsig_secret=secret,
                         timeout=_timeout(p, m, path, 10))


def _lexicon(p: _Parser, m: dict[str, object], path: str, namespace: str) -> LexiconConfig:
    provider = p.string(m, "provider", path, required=True) or ""
    if provider and not _LEXICON_PROVIDER.match(provider):
        p.error(f"{path}.provider", f"{provider!r} is not a dns-lexicon provider name")
    options: list[tuple[str, str]] = []
    for key, raw in p.mapping(m.get("options"), f"{path}.options", None).items():
        option_path = f"{path}.options.{key}"
        if not _LEXICON_OPTION.match(key):
            p.error(option_path, "option names are lower-case letters, digits, '_', '-'")
        elif key.startswith("auth_"):
            p.error(option_path, "credentials are read from a Secret: put it under credentials")
        elif isinstance(raw, bool) or not isinstance(raw, str | int):
            p.error(option_path, f"must be a string or number, got {raw!r}")
        else:
            options.append((key, str(raw)))
    ambient = m.get("credentials") == AMBIENT
    if ambient and provider not in AMBIENT_PROVIDERS:
        p.error(f"{path}.credentials", f"ambient credentials are supported for lexicon "
                                       f"providers {', '.join(sorted(AMBIENT_PROVIDERS))} only")
    credentials: list[tuple[str, SecretKeyRef]] = []
    raw_credentials = None if ambient else m.get("credentials")
    for key, raw in p.mapping(raw_credentials, f"{path}.credentials", None).items():
        if not _LEXICON_OPTION.match(key):
            p.error(f"{path}.credentials.{key}",
                    "option names are lower-case letters, digits, '_', '-'")
            continue
        credentials.append((key, _secret_ref(p, raw, f"{path}.credentials.{key}", namespace)))
    if provider == "route53" and not ambient and not credentials:
        p.error(f"{path}.credentials", "route53 needs auth_access_key and auth_access_secret "
                                       "from Secrets, or `credentials: ambient` (the pod's "
                                       "own AWS identity, e.g. IRSA)")
    return LexiconConfig(provider=provider, options=tuple(sorted(options)),
                         credentials=tuple(sorted(credentials, key=lambda c: c[0])),
                         ambient=ambient)


def _webhook(p: _Parser, m: dict[str, object], path: str, namespace: str) -> WebhookConfig:
    url = p.string(m, "url", path, required=True) or ""
    if url and not _HTTP_URL.match(url):
        p.error(f"{path}.url", f"must be an http(s) URL without credentials, got {url!r}")
    token = (_secret_ref(p, m["tokenSecretRef"], f"{path}.tokenSecretRef", namespace)
             if "tokenSecretRef" in m else None)
    retries = m.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        p.error(f"{path}.retries", f"must be a whole number 0-10, got {retries!r}")
        retries = 3
    return WebhookConfig(url=url, token=token, timeout=_timeout(p, m, path, 10), retries=retries)


def _exec(p: _Parser, m: dict[str, object], path: str) -> ExecConfig:
    command = p.string_list(m, "command", path)
    if not command:
        p.error(f"{path}.command", "is required: a list, the program first (absolute path)")
    elif not command[0].startswith("/"):
        p.error(f"{path}.command[0]", f"must be an absolute path, got {command[0]!r}")
    return ExecConfig(command=command, timeout=_timeout(p, m, path, 60))


def _hostport(host: str, port: int) -> str | None:
    if not host:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
