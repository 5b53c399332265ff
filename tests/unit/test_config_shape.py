"""The config's declared shape and its parser agree: same keys per section, every wrong type
refused by both the parser and the JSON Schema generated from the shape."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path as PathLib
from typing import Any

import jsonschema
import pytest
import yaml

from certbotk8s.core.config import settings as config_module
from certbotk8s.core.config import shape
from certbotk8s.core.config.settings import ConfigError, load_config, parse_config

ROOT = PathLib(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"issuers": {"x": {"directory": "https://ca.test/dir"}}}
SCHEMA = jsonschema.Draft7Validator(shape.json_schema(shape.CONFIG))
Path = tuple[str, ...]


Beside = tuple[Path, dict[str, Any]]  # fields to put into the mapping at that path too
NOTHING: Beside = ((), {})


def _walk(node: shape.Shape, path: Path = (),
          beside: Beside = NOTHING) -> Iterator[tuple[Path, shape.Shape, Beside]]:
    """(path, shape, what goes beside it) of every node; `x` names a MapOf entry, and a DNS
    provider's keys are walked once per type, with that `type` in the provider's mapping."""
    yield path, node, beside
    if isinstance(node, shape.Section):
        for key, child in node.fields.items():
            yield from _walk(child, (*path, key), beside)
    elif isinstance(node, shape.MapOf):
        yield from _walk(node.value, (*path, "x"), beside)
    elif isinstance(node, shape.Tagged):
        for kind, fields in node.by_type.items():
            for key, child in {**node.common, **fields}.items():
                if key != "type":
                    yield from _walk(child, (*path, key), (path, {"type": kind}))
        yield from _walk(node.common["type"], (*path, "type"), beside)


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


def _wrong_values(node: shape.Shape) -> list[object]:
    """Values of a JSON type the node does not allow."""
    if isinstance(node, shape.Leaf):
        wrong: list[object] = [["x"], {"a": "b"}]
        if "string" not in node.types:
            wrong.append("7")
        if "integer" not in node.types and "number" not in node.types:
            wrong.append(7)
        if "integer" in node.types:
            wrong.append(1.5)
        if "boolean" not in node.types and node.types != ("string",):
            wrong.append(True)
        return wrong
    if isinstance(node, shape.ListOf):
        return ["x", *([[w] for w in _wrong_values(node.item)][:1])]
    return ["x", ["x"]]


def _dotted(path: Path) -> str:
    return ".".join(path)


CASES = [(path, node, beside) for path, node, beside in _walk(shape.CONFIG) if path]


@pytest.mark.parametrize("path, node, beside", CASES, ids=[_dotted(p) for p, _, _ in CASES])
def test_parser_and_schema_refuse_every_wrong_type(path: Path, node: shape.Shape,
                                                   beside: Beside) -> None:
    for wrong in _wrong_values(node):
        doc = _place(path, wrong, beside)
        errors = _errors(doc)
        assert any(e.startswith(_dotted(path)) for e in errors), (wrong, errors)
        assert not SCHEMA.is_valid(doc), (wrong, doc)


SECTIONS = [(path, node, beside) for path, node, beside in _walk(shape.CONFIG)
            if isinstance(node, shape.Section | shape.Tagged)]


@pytest.mark.parametrize("path, node, beside", SECTIONS,
                         ids=[_dotted(p) or "<root>" for p, _, _ in SECTIONS])
def test_parser_and_schema_refuse_unknown_keys(path: Path, node: shape.Shape,
                                               beside: Beside) -> None:
    kinds = list(node.by_type) if isinstance(node, shape.Tagged) else [None]
    for kind in kinds:
        extra = {"type": kind} if kind else {}
        doc = (_place(path, {**extra, "zzUnknown": 1}, beside) if path
               else {**BASE, "zzUnknown": 1})
        where = _dotted((*path, "zzUnknown"))
        assert any(e.startswith(f"{where}: unknown field") for e in _errors(doc)), _errors(doc)
        assert not SCHEMA.is_valid(doc), doc


def test_valid_configs_pass_the_schema() -> None:
    """The schema is no stricter than the parser: the documented and shipped configs pass."""
    docstring = config_module.__doc__ or ""
    example = docstring.split("Example::", 1)[1].replace("\n    ", "\n")
    shipped = (ROOT / "manifests" / "base" / "config.yaml").read_text()
    for text in (example, shipped):
        load_config(text)
        SCHEMA.validate(yaml.safe_load(text))
