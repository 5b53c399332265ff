"""`type: exec`: run `command` with the action, FQDN, zone and value in its environment."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator
from pydantic.dataclasses import dataclass

from certbotk8s.core.config.fields import SECTION, SecretKeyRef, Section, Texts, Timeout, fail_at


def _program_first(command: tuple[str, ...]) -> tuple[str, ...]:
    if not command:
        raise ValueError("is required: a list, the program first (absolute path)")
    if not command[0].startswith("/"):
        fail_at((0,), f"must be an absolute path, got {command[0]!r}", command[0])
    return command


@dataclass(frozen=True, config=SECTION)
class ExecConfig(Section):
    """The program (absolute path) and its arguments; `timeout` per run."""

    command: Annotated[Texts, AfterValidator(_program_first)]
    timeout: Timeout = timedelta(seconds=60)

    @property
    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return ()
