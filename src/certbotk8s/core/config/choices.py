"""Values a tenant's annotation and the config file both name: key type, challenge type.

One parser each, used by core.sources.annotations and by the config's declared fields, so both
accept the same words and say the same thing about others. `echo` puts the refused text in the
message: the config's error lines do; an annotation's error shows its value already, quoted
for display (core.sources.text), so it does not.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from certbotk8s.core.model import ChallengeType, KeyType

E = TypeVar("E", bound=enum.Enum)

KEY_TYPES = tuple(k.value for k in KeyType)
CHALLENGES = tuple(c.value for c in ChallengeType)


def parse_key_type(text: str, echo: bool = False) -> KeyType:
    """`text` as a KeyType; ValueError naming the known ones."""
    return _parse(KeyType, text, "unknown key type{shown} (known: " + ", ".join(KEY_TYPES) + ")",
                  f" {text!r}" if echo else "")


def parse_challenge(text: str, echo: bool = False) -> ChallengeType:
    """`text` as a ChallengeType; ValueError naming the two."""
    return _parse(ChallengeType, text, "must be http-01 or dns-01{shown}",
                  f", got {text!r}" if echo else "")


def _parse(kind: type[E], text: str, message: str, shown: str) -> E:
    try:
        return kind(text.strip())
    except ValueError:
        raise ValueError(message.format(shown=shown)) from None
