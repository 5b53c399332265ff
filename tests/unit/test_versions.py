"""One version everywhere: package, chart version and appVersion, manifests' image tag, docs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import certbotk8s

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CHART = yaml.safe_load((ROOT / "charts" / "certbotk8s" / "Chart.yaml").read_text())
VALUES = yaml.safe_load((ROOT / "charts" / "certbotk8s" / "values.yaml").read_text())
REPOSITORY = VALUES["image"]["repository"]


def _container_images(path: Path) -> list[str]:
    images: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                images.extend(c["image"] for c in node.get(key) or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in yaml.safe_load_all(path.read_text()):
        walk(doc)
    return images


def test_package_and_chart_share_one_version() -> None:
    assert certbotk8s.__version__ == VERSION
    assert CHART["version"] == VERSION
    assert CHART["appVersion"] == VERSION


def test_manifests_run_the_image_of_this_version() -> None:
    # The components carry the reference themselves: a base's `images:` would not reach them.
    found = {str(p.relative_to(ROOT)): _container_images(p)
             for p in sorted((ROOT / "manifests").rglob("*.yaml"))}
    images = {image for listed in found.values() for image in listed}
    assert images == {f"{REPOSITORY}:{VERSION}"}, found
    assert len([p for p, listed in found.items() if listed]) >= 2  # Deployment and CronJob


def test_docs_name_the_current_version_of_the_image() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    mentions = {
        (page.name, match.group(1))
        for page in pages
        for match in re.finditer(
            r"(?:certbotk8s:|newTag: \"?|ref=v|tag v)(\d+\.\d+\.\d+)",
            page.read_text())
    }
    assert {(page, v) for page, v in mentions if v != VERSION} == set()
    assert ("installation.md", VERSION) in mentions
