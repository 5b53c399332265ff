"""Write docs/helm-values.md from charts/certbotk8s/values.yaml and its `# --` comments.

Usage: python scripts/helm_values_doc.py [--check]. A key's description is the `# --` comment
(with its continuation lines) right above it; its default is the value in values.yaml. With
--check, exit 1 when the committed page differs (tests/unit/test_chart_values.py runs it too).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "charts" / "certbotk8s" / "values.yaml"
PAGE = ROOT / "docs" / "helm-values.md"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")

HEADER = """# Helm values

Generated from `charts/certbotk8s/values.yaml` by `scripts/helm_values_doc.py`; do not edit.
Install with `helm install certbotk8s charts/certbotk8s -n certbotk8s --create-namespace`
(see [Quickstart](quickstart.md) and [Upgrading](upgrading.md)).

| Key | Default | Description |
|---|---|---|
"""


def described_keys(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key that has a `# --` comment, in file order."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and pending is not None:
            pending.append(stripped[1:].strip())
            continue
        m = _KEY.match(line)
        if m is None:
            if stripped and not stripped.startswith("#"):
                pending = None
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        if pending is not None:
            out.append((".".join(k for _, k in stack), " ".join(pending)))
        pending = None
    return out


def _lookup(values: object, dotted: str) -> object:
    for part in dotted.split("."):
        assert isinstance(values, dict), dotted
        values = values[part]
    return values


def render(text: str) -> str:
    values = yaml.safe_load(text)
    rows = []
    for key, description in described_keys(text):
        default = json.dumps(_lookup(values, key)).replace("|", "\\|")
        text_ = description.replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {text_} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    page = render(VALUES.read_text())
    if "--check" in argv:
        if PAGE.read_text() != page:
            print(f"{PAGE} is stale: run python scripts/helm_values_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
