"""The boundaries the core talks through, as small Protocols. Adapters implement them.

Conventions for every boundary here:
- not-found is `None`, never an exception;
- each boundary raises exceptions of its own family only (see `errors.py`), chaining the cause;
- methods are safe to call again after a failure (idempotent where stated);
- cancellation: callers stop between calls; a method never leaves half-made state that its
  `clean_up`/`remove` counterpart cannot undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from certbotk8s.core.model import ChallengeType


@dataclass(frozen=True)
class PendingChallenge:
    """One challenge the CA wants answered for one identifier.

    `domain` is the identifier without any `*.` (the CA's authorization names the base domain
    and flags wildcards). `key_authorization` is what HTTP-01 serves; `dns_value` is the TXT
    value for DNS-01 (base64url SHA-256 of the key authorization). Both are public values.
    """

    type: ChallengeType
    domain: str
    wildcard: bool
    token: str
    key_authorization: str = field(repr=False)
    dns_value: str = ""


class ChallengeSolver(Protocol):
    """Makes challenges answerable, then removes every trace of them.

    - `present` publishes one challenge (HTTP token, TXT record, routing). Idempotent.
      Raises `SolverError` when it cannot.
    - `wait_until_ready` returns once the CA can see every presented challenge (HTTP self-check,
      DNS propagation to all authoritative servers) or raises `SolverError` after its bound.
    - `clean_up` removes exactly what `present` added for this challenge and nothing else;
      it never raises for something already gone (not-found is success) and is always called
      in `finally`, also after a failed or cancelled order.
    """

    challenge_type: ChallengeType

    def present(self, challenge: PendingChallenge) -> None: ...

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None: ...

    def clean_up(self, challenge: PendingChallenge) -> None: ...


class TokenStore(Protocol):
    """HTTP-01 tokens by token name. `get` of an unknown token is `None`.

    In-process for one-shot runs; the controller shares it between replicas through the API.
    Writes are last-writer-wins per token (tokens are unique per challenge).
    """

    def put(self, token: str, key_authorization: str) -> None: ...

    def get(self, token: str) -> str | None: ...

    def delete(self, token: str) -> None: ...
