"""cert-manager's Ingress annotations read as certbotk8s options (config `migration`).

Only when `migration.certManagerIssuers` is configured. Every `certbotk8s.io/*` annotation wins
over its cert-manager counterpart. What is read:

- `cert-manager.io/cluster-issuer` / `cert-manager.io/issuer`: opt the source in; the name is
  mapped to a configured issuer through `migration.certManagerIssuers` (a name not there is
  an error naming that key). Both at once is an error, as in cert-manager.
- `cert-manager.io/renew-before` -> renew-before (Go durations: `720h`, `360h0m0s`).
- `cert-manager.io/private-key-algorithm` (`RSA` default 2048 bits, `ECDSA` default P-256) and
  `cert-manager.io/private-key-size` -> key type; Ed25519 and P-521 are refused (no CA that
  certbotk8s talks to issues for them).
- Every other `cert-manager.io/*` key (`duration` first of all: an ACME CA decides the
  lifetime) is ignored and reported as ignored (a notice, not a refusal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import KeyType
from certbotk8s.core.sources.text import quote

PREFIX = "cert-manager.io/"
ISSUER = "cert-manager.io/issuer"
CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
DURATION = "cert-manager.io/duration"
RENEW_BEFORE = "cert-manager.io/renew-before"
KEY_ALGORITHM = "cert-manager.io/private-key-algorithm"
KEY_SIZE = "cert-manager.io/private-key-size"
# Say which kind of issuer the name is: the mapping is by name alone, so they change nothing.
ISSUER_KIND = "cert-manager.io/issuer-kind"
ISSUER_GROUP = "cert-manager.io/issuer-group"
READ = frozenset({ISSUER, CLUSTER_ISSUER, RENEW_BEFORE, KEY_ALGORITHM, KEY_SIZE, ISSUER_KIND,
                  ISSUER_GROUP})

MAX_VALUE = 256  # characters; a longer value is refused unread
MAX_LISTED = 10  # ignored keys named in one notice; the rest are counted

ISSUER_NOT_MAPPED = "IssuerNotMapped"
MAPPING_KEY = "migration.certManagerIssuers"

_RSA = {"2048": KeyType.RSA_2048, "3072": KeyType.RSA_3072, "4096": KeyType.RSA_4096}
_ECDSA = {"256": KeyType.ECDSA_P256, "384": KeyType.ECDSA_P384}


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    reason: str | None = None  # None: InvalidAnnotation


@dataclass(frozen=True)
class Translated:
    """What cert-manager's annotations ask for (None: they say nothing about it)."""

    issuer: str | None = None
    renew_before: timedelta | None = None
    key_type: KeyType | None = None
    problems: tuple[Problem, ...] = ()
    ignored: tuple[str, ...] = ()  # keys read and not honoured (sorted)


def opts_in(annotations: Mapping[str, str], config: Config) -> bool:
    """Whether cert-manager's issuer annotations ask for a certificate (migration on)."""
    return config.migration.from_cert_manager and (
        ISSUER in annotations or CLUSTER_ISSUER in annotations)


def translate(annotations: Mapping[str, str], config: Config) -> Translated:
    """cert-manager's annotations of one source, as certbotk8s options (see module doc)."""
    if not config.migration.from_cert_manager:
        return Translated()
    problems = [Problem(k, f"longer than {MAX_VALUE} characters") for k in sorted(READ)
                if len(annotations.get(k, "")) > MAX_VALUE]
    if problems:
        return Translated(problems=tuple(problems))

    issuer: str | None = None
    named = [k for k in (CLUSTER_ISSUER, ISSUER) if k in annotations]
    if len(named) > 1:
        problems.append(Problem(ISSUER, f"set only one of {CLUSTER_ISSUER} and {ISSUER}"))
    elif named:
        name = annotations[named[0]].strip()
        issuer = config.migration.cert_manager_issuers.get(name)
        if issuer is None:
            known = ", ".join(sorted(config.migration.cert_manager_issuers))
            problems.append(Problem(
                named[0], f"cert-manager issuer {quote(name)} is not mapped to an issuer: add "
                f"it to {MAPPING_KEY} in the config (mapped: {known})", ISSUER_NOT_MAPPED))

    renew_before: timedelta | None = None
    if RENEW_BEFORE in annotations:
        try:
            renew_before = parse_duration(annotations[RENEW_BEFORE])
        except ValueError as e:
            problems.append(Problem(RENEW_BEFORE, str(e)))

    key_type: KeyType | None = None
    if KEY_ALGORITHM in annotations or KEY_SIZE in annotations:
        algorithm = annotations.get(KEY_ALGORITHM, "RSA").strip().upper()
        size = annotations.get(KEY_SIZE, "").strip()
        table = {"RSA": _RSA, "ECDSA": _ECDSA}.get(algorithm)
        if table is None:
            problems.append(Problem(KEY_ALGORITHM, "must be RSA or ECDSA (Ed25519 is not "
                                    "issued by the configured CAs)"))
        else:
            default = "2048" if algorithm == "RSA" else "256"
            key_type = table.get(size or default)
            if key_type is None:
                problems.append(Problem(KEY_SIZE, f"{algorithm} keys of {', '.join(table)} "
                                        "bits are supported"))

    ignored = tuple(sorted(k for k in annotations if k.startswith(PREFIX) and k not in READ))
    return Translated(issuer, renew_before, key_type, tuple(problems), ignored)


def ignored_notice(ignored: tuple[str, ...]) -> str:
    """The notice for cert-manager annotations that are not honoured."""
    why = " (the ACME CA decides the certificate's lifetime)" if DURATION in ignored else ""
    listed = [quote(k) for k in ignored[:MAX_LISTED]]
    if len(ignored) > MAX_LISTED:
        listed.append(f"and {len(ignored) - MAX_LISTED} more")
    return f"cert-manager annotations ignored: {', '.join(listed)}{why}"
