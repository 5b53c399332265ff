"""The Helm values reference (docs/helm-values.md) is generated from values.yaml and current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("helm_values_doc",
                                               ROOT / "scripts" / "helm_values_doc.py")
assert _SPEC is not None and _SPEC.loader is not None
doc = importlib.util.module_from_spec(_SPEC)
sys.modules["helm_values_doc"] = doc
_SPEC.loader.exec_module(doc)


def _leaves(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        out: set[str] = set()
        for key, child in value.items():
            out |= _leaves(child, f"{prefix}{key}.")
        return out
    return {prefix.rstrip(".")}


def test_values_page_is_current() -> None:
    assert doc.PAGE.read_text() == doc.render(doc.VALUES.read_text()), \
        "docs/helm-values.md is stale: run python scripts/helm_values_doc.py"


def test_every_value_is_described() -> None:
    text = doc.VALUES.read_text()
    described = {key for key, _ in doc.described_keys(text)}
    undescribed = [leaf for leaf in _leaves(yaml.safe_load(text))
                   if not any(leaf == k or leaf.startswith(k + ".") for k in described)]
    assert not undescribed, undescribed


def test_described_keys_follow_nesting() -> None:
    text = "a:\n  # -- the b\n  # continued\n  b: 1\n# -- top\nc: {}\nd:\n  e: 2\n"
    assert doc.described_keys(text) == [("a.b", "the b continued"), ("c", "top")]
