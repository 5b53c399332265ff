"""The `main` of a script that writes a generated file: write it, or with --check only say
whether the committed one is stale (exit 1)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, argv: list[str], script: str) -> int:
    """Write `text` to `path`; with `--check` in `argv`, exit status 1 (and a line naming
    `script` to run) when `path` holds something else, 0 when it is current."""
    if "--check" in argv:
        if path.read_text() != text:
            print(f"{path} is stale: run python {script}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0
