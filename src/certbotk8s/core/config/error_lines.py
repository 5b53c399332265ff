"""pydantic's ValidationError as the config's error lines: `path: message`, the path in the
file's own words (`issuers.le.eab.secretRef.hmacKey`, `certificates.web.hosts[1]`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import PlainValidator, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails

from certbotk8s.core.config.dns_providers import PROVIDER_SETTINGS, DnsProviderConfig
from certbotk8s.core.sources.names import is_dns1123_label

_REQUIRED = {"missing", "missing_argument", "missing_keyword_only_argument"}
_UNKNOWN = {"extra_forbidden", "unexpected_keyword_argument"}
_MAPPING = {"dict_type", "dataclass_type", "dataclass_args_type", "model_type", "mapping_type"}
_LIST = {"list_type", "tuple_type"}


def error_lines(error: ValidationError, document: Mapping[str, Any], root: type) -> list[str]:
    """One line per error, in the order pydantic found them (the order of the file's fields)."""
    lines: list[str] = []
    for detail in error.errors(include_url=False):
        loc = _in_file(detail["loc"])
        lines.append(f"{_path(loc, document)}: {_message(detail, loc, document, root)}")
    return list(dict.fromkeys(lines))


def _in_file(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The location as the file has it: without a mapping key's `[key]` marker, and without
    `settings` in a DNS provider (whose type's keys sit beside the common ones in the file)."""
    out = [part for part in loc if part != "[key]"]
    if out and isinstance(out[0], str):  # a top-level default checked has its Python name
        out[0] = to_camel(out[0])
    if len(out) > 2 and out[0] == "dnsProviders" and out[2] == "settings":
        del out[2]
    return tuple(out)


def _path(loc: tuple[str | int, ...], document: Mapping[str, Any]) -> str:
    if not loc:
        return "<root>"
    parts = list(loc)
    if (len(parts) > 1 and parts[0] == "certificates" and isinstance(parts[1], int)
            and parts[2:3] != ["name"]):
        name = _entry_name(document.get("certificates"), parts[1])
        if name is not None:
            parts[1] = name
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _entry_name(entries: object, index: int) -> str | None:
    """The name of entry `index` of `certificates` when it is valid and its first use."""
    if not isinstance(entries, list) or index >= len(entries):
        return None
    names = [e.get("name") if isinstance(e, dict) else None for e in entries]
    name = names[index]
    if isinstance(name, str) and is_dns1123_label(name) and name not in names[:index]:
        return name
    return None


def _message(detail: ErrorDetails, loc: tuple[str | int, ...], document: Mapping[str, Any],
             root: type) -> str:
    kind = detail["type"]
    if kind == "value_error":
        return str(detail.get("ctx", {}).get("error", detail["msg"]))
    if kind in _REQUIRED:
        return "is required"
    if kind in _UNKNOWN:
        known = _known_keys(loc[:-1], document, root)
        return f"unknown field (known: {', '.join(known)})" if known else "unknown field"
    if kind in _MAPPING:
        return f"must be a mapping, got {type(detail['input']).__name__}"
    if kind in _LIST:
        return f"must be a list, got {type(detail['input']).__name__}"
    return f"{detail['msg'][:1].lower()}{detail['msg'][1:]}, got {detail['input']!r}"


def _known_keys(loc: tuple[str | int, ...], document: Any, root: type) -> list[str]:
    """The keys the section at `loc` accepts (for `unknown field (known: ...)`)."""
    node: Any = root
    value: Any = document
    for part in loc:
        node = _step(node, part, value)
        value = value.get(part) if isinstance(value, dict) else None
    section = _unwrap(node)
    if not dataclasses.is_dataclass(section):
        return []
    keys = _aliases(section)
    if section is DnsProviderConfig and isinstance(value, dict):
        settings = PROVIDER_SETTINGS.get(value.get("type"))  # type: ignore[arg-type]
        keys = (keys - {"settings"}) | (_aliases(settings) if settings else set())
    return sorted(keys)


def _aliases(section: Any) -> set[str]:
    return {info.alias or name for name, info in section.__pydantic_fields__.items()
            if info.init is not False and not _hidden(info)}


def _hidden(info: Any) -> bool:
    return any(type(m) is SkipJsonSchema for m in info.metadata)


def _unwrap(node: Any) -> Any:
    """`node` without Annotated (a PlainValidator's file form instead) and without None."""
    while True:
        origin = typing.get_origin(node)
        if origin is typing.Annotated:
            plain = [m for m in node.__metadata__ if isinstance(m, PlainValidator)]
            node = plain[0].json_schema_input_type if plain else typing.get_args(node)[0]
        elif origin in (typing.Union, types.UnionType):
            node = [a for a in typing.get_args(node) if a is not type(None)][-1]
        else:
            return node


def _step(node: Any, part: str | int, value: Any) -> Any:
    """The type found at `part` inside `node` (`value`: the document there)."""
    node = _unwrap(node)
    origin = typing.get_origin(node)
    if origin in (dict, Mapping):
        return typing.get_args(node)[1]
    if origin is tuple:
        return typing.get_args(node)[0]
    if not dataclasses.is_dataclass(node):
        return None
    hints = typing.get_type_hints(node, include_extras=True)
    for name, info in node.__pydantic_fields__.items():  # type: ignore[union-attr]
        if (info.alias or name) == part:
            return hints[name]
    if node is DnsProviderConfig and isinstance(value, dict):
        settings = PROVIDER_SETTINGS.get(value.get("type"))  # type: ignore[arg-type]
        return _step(settings, part, value) if settings else None
    return None
