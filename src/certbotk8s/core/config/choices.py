"""Values a tenant's annotation and the config file both name: key type, challenge type.

One parser each, used by core.sources.annotations and by the config's declared fields, so both
accept the same words and say the same thing about others.
"""

from __future__ import annotations

from certbotk8s.core.model import ChallengeType, KeyType

KEY_TYPES = tuple(k.value for k in KeyType)
CHALLENGES = tuple(c.value for c in ChallengeType)


def parse_key_type(text: str) -> KeyType:
    """`text` as a KeyType; ValueError naming the known ones."""
    try:
        return KeyType(text.strip())
    except ValueError:
        raise ValueError(f"unknown key type {text!r} (known: {', '.join(KEY_TYPES)})") from None


def parse_challenge(text: str) -> ChallengeType:
    """`text` as a ChallengeType; ValueError naming the two."""
    try:
        return ChallengeType(text.strip())
    except ValueError:
        raise ValueError(f"must be http-01 or dns-01, got {text!r}") from None
