"""`type: rfc2136`: an RFC 2136 primary with a TSIG key whose secret is read from a Secret."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator
from pydantic.dataclasses import dataclass

from certbotk8s.core.config.fields import (
    SECTION,
    Endpoint,
    SecretKeyRef,
    SecretRefField,
    Section,
    Text,
    Timeout,
    split_hostport,
)

TSIG_ALGORITHMS = frozenset(
    {"hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}
)


def _algorithm(value: str) -> str:
    name = value.lower()
    if name not in TSIG_ALGORITHMS:
        raise ValueError(f"unknown {name!r} (known: {', '.join(sorted(TSIG_ALGORITHMS))})")
    return name


@dataclass(frozen=True, config=SECTION)
class Tsig(Section):
    """The TSIG key: its name, algorithm and the Secret key holding its secret."""

    key_name: Text
    secret_ref: SecretRefField
    algorithm: Annotated[Text, AfterValidator(_algorithm)] = "hmac-sha256"


@dataclass(frozen=True, config=SECTION)
class Rfc2136Config(Section):
    """`server` (`host`, `host:port`, `[v6]:port`; kept as `host:port`) takes the updates."""

    server: Endpoint
    tsig: Tsig
    timeout: Timeout = timedelta(seconds=10)

    @property
    def server_host(self) -> str:
        return split_hostport(self.server)[0]

    @property
    def server_port(self) -> int:
        return split_hostport(self.server)[1]

    @property
    def tsig_key_name(self) -> str:
        return self.tsig.key_name

    @property
    def tsig_algorithm(self) -> str:
        return self.tsig.algorithm

    @property
    def tsig_secret(self) -> SecretKeyRef:
        return self.tsig.secret_ref

    @property
    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.tsig.secret_ref,)
