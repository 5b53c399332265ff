"""The config's JSON schema (generated from its models) and its validation agree: every key the
schema names refuses every wrong JSON type in both, every section refuses unknown keys in both."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path as PathLib
from typing import Any

import jsonschema
import pytest
import yaml

from certbotk8s.core.config import settings as config_module
from certbotk8s.core.config.schema import config_schema
from certbotk8s.core.config.settings import ConfigError, load_config, parse_config

ROOT = PathLib(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"issuers": {"x": {"directory": "https://ca.test/dir"}}}
SCHEMA = jsonschema.Draft7Validator(config_schema())
Path = tuple[str, ...]
Node = dict[str, Any]


Beside = tuple[Path, dict[str, Any]]  # fields to put into the mapping at that path too
NOTHING: Beside = ((), {})


def _plain(node: Node) -> Node:
    """`node` without its `null` alternative (a key left without a value counts as absent)."""
    options = [o for o in node.get("anyOf", []) if o != {"type": "null"}]
    return options[0] if len(options) == 1 else node


def _walk(node: Node, path: Path = (), beside: Beside = NOTHING
          ) -> Iterator[tuple[Path, Node, Beside]]:
    """(path, schema, what goes beside it) of every key; `x` names a mapping's entry, and a
    DNS provider's keys are walked once per type, with that `type` in the provider's mapping."""
    node = _plain(node)
    yield path, node, beside
    if "properties" in node:
        for key, child in node["properties"].items():
            yield from _walk(child, (*path, key), beside)
    elif isinstance(node.get("additionalProperties"), dict):
        entry = node["additionalProperties"]
        if "oneOf" in entry:
            for option in entry["oneOf"]:
                kind = option["properties"]["type"]["const"]
                yield (*path, "x"), option, beside
                for key, child in option["properties"].items():
                    if key != "type":
                        yield from _walk(child, (*path, "x", key), ((*path, "x"), {"type": kind}))
        else:
            yield from _walk(entry, (*path, "x"), beside)


def _place(path: Path, value: object, beside: Beside = NOTHING) -> dict[str, Any]:
    """BASE with `value` at `path`, and the `beside` fields in the mapping at their path."""
    doc = copy.deepcopy(BASE)
    where, fields = beside
    target = doc
    for key in where:
        target = target.setdefault(key, {})
    target.update(fields)
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return doc


def _errors(doc: dict[str, Any]) -> tuple[str, ...]:
    try:
        parse_config(doc)
    except ConfigError as e:
        return e.errors
    return ()


def _types(node: Node) -> set[str]:
    kind = node.get("type", "object" if "properties" in node or "anyOf" in node else None)
    if "const" in node or "enum" in node:
        return {"string"}
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _wrong_values(node: Node) -> list[object]:
    """Values of a JSON type the node does not allow."""
    types = _types(node)
    if types == {"array"}:
        item = _plain(node["items"])
        return ["x", *([[w] for w in _wrong_values(item)][:1])]
    if "object" in types:
        return ["x", ["x"]]
    wrong: list[object] = [["x"], {"a": "b"}]
    if "string" not in types:
        wrong.append("7")
    if not types & {"integer", "number"}:
        wrong.append(7)
    if "integer" in types:
        wrong.append(1.5)
    if "boolean" not in types and types != {"string"}:
        wrong.append(True)
    return wrong


def _dotted(path: Path) -> str:
    return ".".join(path)


CASES = [(path, node, beside) for path, node, beside in _walk(config_schema())
         if path and path[-1] != "x"]


@pytest.mark.parametrize("path, node, beside", CASES, ids=[_dotted(p) for p, _, _ in CASES])
def test_validation_and_schema_refuse_every_wrong_type(path: Path, node: Node,
                                                       beside: Beside) -> None:
    for wrong in _wrong_values(node):
        doc = _place(path, wrong, beside)
        errors = _errors(doc)
        assert any(e.startswith(_dotted(path)) for e in errors), (wrong, errors)
        assert not SCHEMA.is_valid(doc), (wrong, doc)


SECTIONS = [(path, node, beside) for path, node, beside in _walk(config_schema())
            if node.get("additionalProperties") is False]


@pytest.mark.parametrize("path, node, beside", SECTIONS,
                         ids=[f"{_dotted(p) or '<root>'}:{b[1].get('type', '')}"
                              for p, _, b in SECTIONS])
def test_validation_and_schema_refuse_unknown_keys(path: Path, node: Node,
                                                   beside: Beside) -> None:
    kind = node["properties"].get("type", {}).get("const")
    extra = {"type": kind} if kind else {}
    doc = (_place(path, {**extra, "zzUnknown": 1}, beside) if path
           else {**BASE, "zzUnknown": 1})
    where = _dotted((*path, "zzUnknown"))
    assert any(e.startswith(f"{where}: unknown field") for e in _errors(doc)), _errors(doc)
    assert not SCHEMA.is_valid(doc), doc


def test_every_section_is_walked() -> None:
    """The walk reaches the deep sections too (so the cases above cover them)."""
    paths = {_dotted(p) for p, _, _ in SECTIONS}
    assert {"", "issuers.x.eab.secretRef", "issuers.x.rateLimits", "dnsProviders.x",
            "dnsProviders.x.tsig", "solver.dns01.propagation", "tenants"} <= paths, paths


def test_valid_configs_pass_the_schema() -> None:
    """The schema is no stricter than the validation: the documented and shipped configs
    pass."""
    docstring = config_module.__doc__ or ""
    example = docstring.split("Example::", 1)[1].replace("\n    ", "\n")
    shipped = (ROOT / "manifests" / "base" / "config.yaml").read_text()
    for text in (example, shipped):
        load_config(text)
        SCHEMA.validate(yaml.safe_load(text))
