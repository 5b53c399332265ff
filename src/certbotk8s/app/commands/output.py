"""`-o json|yaml`: one document for machines, from plain data (the commands build it)."""

from __future__ import annotations

import json

import yaml

FORMATS = ("json", "yaml")


def render(data: object, fmt: str) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=False).rstrip("\n")
    return json.dumps(data, indent=2)
