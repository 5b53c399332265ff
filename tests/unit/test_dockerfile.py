"""The Dockerfile pins its base image by digest and its final stage starts from nothing."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()


def test_base_image_is_pinned_by_digest() -> None:
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default), default


def test_final_stage_is_scratch_and_not_root() -> None:
    final = DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]
    assert final.startswith("\nFROM scratch\n")
    assert "\nUSER 65532:65532\n" in final
    assert "\nRUN " not in final  # nothing to run it with: no shell in the final stage
