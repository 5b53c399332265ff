"""The architecture map and the design notes index stay true: every module the map names exists,
every long module is explained there, and every dated note is in the index and the docs nav."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "src" / "certbotk8s"
MAP = (DOCS / "architecture.md").read_text()
LONG = 400  # lines; a module over this is named in the map's "Long modules" with its reason

# `core/renewal/lifecycle.py`, `adapters/kube/`, `app/controller/order_runner.py`, `cli.py`
_NAMED = re.compile(r"`((?:core|adapters|app)/[a-z0-9_/]*(?:\.py)?|cli\.py)")


def _named_paths(text: str) -> set[str]:
    return {m.group(1) for m in _NAMED.finditer(text)}


def test_every_module_and_package_the_map_names_exists() -> None:
    named = _named_paths(MAP)
    assert len(named) > 40  # the map names modules, not just layers
    missing = sorted(p for p in named if not (PACKAGE / p).exists())
    assert missing == []


def test_every_long_module_is_explained_in_the_map() -> None:
    long_section = MAP.split("## Long modules", 1)[1].split("\n## ", 1)[0]
    explained = _named_paths(long_section)
    long = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
            if len(path.read_text().splitlines()) > LONG}
    assert sorted(long - explained) == []


def test_every_design_note_is_in_the_index_and_the_nav() -> None:
    notes = {p.name for p in (DOCS / "design").glob("2*.md")}
    index = (DOCS / "design" / "index.md").read_text()
    assert sorted(n for n in notes if f"({n})" not in index) == []
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {Path(page).name for page in _pages(nav) if page.startswith("design/")}
    assert sorted((notes | {"index.md"}) - listed) == []
    assert "architecture.md" in _pages(nav)


def _pages(items: list[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out.extend(_pages(value) if isinstance(value, list) else [str(value)])
    return out
