"""The shape of the configuration file: each section's keys and the JSON type of their values.

The parser (core.config, core.config_dns) takes the keys it accepts from here, so a key is
declared once; `scripts/gen-values-schema` turns the shape into JSON Schema for the Helm chart's
`config` value. Rules beyond the type (URLs, namespace names, ranges, what depends on what) stay
in the parser; tests/unit/test_config_shape.py checks that the parser refuses every wrong type
the shape names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from certbotk8s.core.model import ChallengeType, KeyType

PATH_TYPES = frozenset({"ImplementationSpecific", "Prefix", "Exact"})


@dataclass(frozen=True)
class Leaf:
    """A scalar: one or more JSON types (`string`, `boolean`, `integer`, `number`)."""

    types: tuple[str, ...]
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    item: Shape


@dataclass(frozen=True)
class Section:
    """A mapping with exactly these keys (any may be left out)."""

    fields: Mapping[str, Shape]


@dataclass(frozen=True)
class MapOf:
    """A mapping from names the user chooses (issuers, namespaces) to values of one shape."""

    value: Shape


@dataclass(frozen=True)
class AnyOf:
    """A value of any one of these shapes (lexicon credentials: Secret keys, or `ambient`)."""

    options: tuple[Shape, ...]


@dataclass(frozen=True)
class Tagged:
    """A Section whose further keys depend on its `type` key (the DNS providers)."""

    common: Mapping[str, Shape]
    by_type: Mapping[str, Mapping[str, Shape]]


Shape = Leaf | ListOf | Section | MapOf | Tagged | AnyOf

STRING = Leaf(("string",))
BOOLEAN = Leaf(("boolean",))
INTEGER = Leaf(("integer",))
SECONDS = Leaf(("number",))
STRINGS = ListOf(STRING)
KEY_TYPE = Leaf(("string",), tuple(k.value for k in KeyType))

SECRET_KEY_REF = Section({"namespace": STRING, "name": STRING, "key": STRING})

ISSUER = Section({
    "directory": STRING,
    "email": STRING,
    "eab": Section({"secretRef": Section(
        {"namespace": STRING, "name": STRING, "keyIdKey": STRING, "hmacKey": STRING})}),
    "caBundle": STRING,
    "preferredChain": STRING,
    "profiles": STRINGS,
    "rateLimits": Section({key: INTEGER for key in (
        "certificatesPerDomain", "certificatesPerIdentifierSet", "ordersPer3Hours",
        "failedAuthorizationsPerHour", "namespaceOrderShare", "namespaceDomainShare")}),
    "defaultProfile": STRING,
    "namespaces": STRINGS,
})

DNS_PROVIDER = Tagged(
    common={"type": STRING, "zones": STRINGS, "namespaces": STRINGS, "followCname": BOOLEAN,
            "resolver": STRING, "nameserverPort": INTEGER, "ttl": INTEGER},
    by_type={
        "rfc2136": {"server": STRING, "timeout": SECONDS, "tsig": Section(
            {"keyName": STRING, "algorithm": STRING, "secretRef": SECRET_KEY_REF})},
        "lexicon": {"provider": STRING, "options": MapOf(Leaf(("string", "integer"))),
                    "credentials": AnyOf((MapOf(SECRET_KEY_REF),
                                          Leaf(("string",), ("ambient",))))},
        "webhook": {"url": STRING, "tokenSecretRef": SECRET_KEY_REF, "timeout": SECONDS,
                    "retries": INTEGER},
        "exec": {"command": STRINGS, "timeout": SECONDS},
    },
)

ISTIO = Section({"gatewayNamespace": STRING, "allowedSourceNamespaces": STRINGS,
                 "gatewayNamespaces": STRINGS})

DEFAULT_CERTIFICATE = Section({
    "hosts": STRINGS,
    "secret": Section({"namespace": STRING, "name": STRING}),
    "issuer": STRING,
    "challenge": Leaf(("string",), tuple(c.value for c in ChallengeType)),
    "dnsProvider": STRING,
    "keyType": KEY_TYPE,
    "profile": STRING,
    "renewBefore": STRING,
})
CERTIFICATE = Section({"name": STRING, **DEFAULT_CERTIFICATE.fields})  # one of `certificates`

HTTP01 = Section({
    "pathType": Leaf(("string",), tuple(sorted(PATH_TYPES))),
    "selfCheck": BOOLEAN,
    "port": INTEGER,
    "listenAddress": STRING,
    "solverService": STRING,
    "solverServicePort": INTEGER,
    "selfCheckPort": INTEGER,
    "selfCheckResolver": STRING,
    "selfCheckNetworks": STRINGS,
})
DNS01 = Section({
    "propagationTimeout": SECONDS,
    "pollInterval": SECONDS,
    "propagation": Section({"mode": Leaf(("string",), ("authoritative", "recursive")),
                            "nameservers": STRINGS}),
})
SOLVER = Section({"http01": HTTP01, "dns01": DNS01, "orderTimeout": SECONDS})

RENEWAL = Section({"renewBefore": STRING, "keyType": KEY_TYPE})

TENANTS = Section({
    "hostPatterns": MapOf(STRINGS),
    "allowAnyHost": BOOLEAN,
    "shareHosts": BOOLEAN,
    "maxHostsPerCertificate": INTEGER,
    "claimGraceSeconds": SECONDS,
    "allowedSpecialUseSuffixes": STRINGS,
})

CONFIG = Section({
    "issuers": MapOf(ISSUER),
    "defaultIssuer": STRING,
    "dnsProviders": MapOf(DNS_PROVIDER),
    "defaultDnsProvider": STRING,
    "controllerNamespace": STRING,
    "istio": ISTIO,
    "defaultCertificate": DEFAULT_CERTIFICATE,
    "certificates": ListOf(CERTIFICATE),
    "solver": SOLVER,
    "renewal": RENEWAL,
    "tenants": TENANTS,
})


def keys(fields: Section | Mapping[str, Shape]) -> frozenset[str]:
    """The keys a section accepts (what the parser passes as `allowed`)."""
    return frozenset(fields.fields if isinstance(fields, Section) else fields)


def section(parent: Section | Mapping[str, Shape], key: str) -> Section:
    """The sub-section `key` of `parent`."""
    child = (parent.fields if isinstance(parent, Section) else parent)[key]
    assert isinstance(child, Section), key
    return child


def json_schema(shape: Shape) -> dict[str, object]:
    """JSON Schema (draft 7) of `shape`: types and keys; unknown keys are refused."""
    if isinstance(shape, Leaf):
        leaf: dict[str, object] = {
            "type": shape.types[0] if len(shape.types) == 1 else list(shape.types)}
        if shape.enum:
            leaf["enum"] = list(shape.enum)
        return leaf
    if isinstance(shape, ListOf):
        return {"type": "array", "items": json_schema(shape.item)}
    if isinstance(shape, MapOf):
        return {"type": "object", "additionalProperties": json_schema(shape.value)}
    if isinstance(shape, Section):
        return _closed(shape.fields)
    if isinstance(shape, AnyOf):
        return {"anyOf": [json_schema(option) for option in shape.options]}
    return {"type": "object", "required": ["type"], "oneOf": [
        _closed({**shape.common, **fields}, {"type": {"const": kind}})
        for kind, fields in sorted(shape.by_type.items())]}


def _closed(fields: Mapping[str, Shape],
            override: Mapping[str, object] | None = None) -> dict[str, object]:
    properties: dict[str, object] = {
        key: json_schema(value) for key, value in sorted(fields.items())}
    properties.update(override or {})
    return {"type": "object", "additionalProperties": False, "properties": properties}
