"""The architecture map and the design decisions stay true: every module the map names exists,
every long module is explained there, and every decision record is numbered, states its status
and is in the index and the docs nav."""

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


_RECORD = re.compile(r"(\d{4})-[a-z0-9-]+\.md")
# `- Status: Accepted`, `- Status: Accepted; amended ...`, `- Status: Superseded in part by
# [0017](0017-records.md)...`, `- Status: Superseded by [0031](0031-....md)`
_STATUS = re.compile(r"^- Status: (Accepted\b|Superseded (in part )?by \[\d{4}\]\(\d{4}-)", re.M)


def _records() -> dict[str, str]:
    return {p.name: p.read_text() for p in (DOCS / "design").glob("*.md") if p.name != "index.md"}


def test_every_decision_record_is_numbered_in_order_and_states_its_status() -> None:
    records = _records()
    names = [n for n in records if not _RECORD.fullmatch(n)]
    assert names == []  # a dated or unnumbered note: give it the next number
    numbers = sorted(int(n[:4]) for n in records)
    assert numbers == list(range(1, len(numbers) + 1))
    for name, text in records.items():
        head = text.split("\n## ", 1)[0]
        assert text.startswith(f"# {name[:4]} — "), name
        assert _STATUS.search(head), name
        # a record is superseded only by a later one that exists
        for later in re.findall(r"Superseded[^\n]*", head):
            for number in re.findall(r"\[(\d{4})\]", later):
                assert int(number) > int(name[:4]) and int(number) in numbers, (name, number)


def test_every_design_note_is_in_the_index_and_the_nav() -> None:
    notes = set(_records())
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
