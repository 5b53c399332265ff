"""The JSON schema (draft 7) of the configuration file, generated from the declared sections.

scripts/values_schema.py puts it under the Helm chart's `config` value, so the chart refuses
what the controller would: unknown keys, wrong JSON types, values outside a closed set. Rules
beyond that (URLs, namespace names, ranges, what depends on what) are the validators' alone.
Built on demand (scripts and tests), never at start-up.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter

from certbotk8s.core.config.dns_providers import PROVIDER_SETTINGS, DnsProviderConfig
from certbotk8s.core.config.settings import Config

Schema = dict[str, Any]
_DOCS = ("title", "default", "description")  # Python's words; the docs are docs/configuration.md


@cache
def config_schema() -> Schema:
    """The whole file's schema: every section inline (no `$ref`); no titles, defaults or
    descriptions (those are the docs', docs/configuration.md)."""
    schema = _inline(TypeAdapter(Config).json_schema(by_alias=True))
    _tag_dns_providers(schema)
    return schema


def top_level_keys() -> frozenset[str]:
    return frozenset(config_schema()["properties"])


def all_keys(node: Any = None) -> set[str]:
    """Every key any section of the file accepts."""
    node = config_schema() if node is None else node
    found: set[str] = set()
    if isinstance(node, dict):
        found |= set(node.get("properties", {}))
        for value in node.values():
            found |= all_keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= all_keys(value)
    return found


def _section(cls: type) -> Schema:
    return _inline(TypeAdapter(cls).json_schema(by_alias=True))


def _inline(schema: Schema) -> Schema:
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items() if k not in _DOCS}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    result: Schema = resolve(schema)
    return result


def _tag_dns_providers(schema: Schema) -> None:
    """In the file a provider's type keys sit beside the common ones: one closed object per
    `type` (DnsProviderConfig keeps them apart as `settings`)."""
    common = _section(DnsProviderConfig)["properties"]
    providers = schema["properties"]["dnsProviders"]
    one_of = []
    for kind, cls in sorted(PROVIDER_SETTINGS.items()):
        own = _section(cls)
        one_of.append({
            "type": "object", "additionalProperties": False,
            "required": sorted({"type", *own.get("required", [])}),
            "properties": {**common, **own["properties"], "type": {"const": kind}}})
    providers["additionalProperties"] = {"type": "object", "required": ["type"],
                                         "oneOf": one_of}
