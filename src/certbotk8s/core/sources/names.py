"""Host names as ACME orders them: lower-case A-labels, wildcards only as a leading `*.` label.

Also the Kubernetes name rules (DNS-1123 label and subdomain) the other core modules validate with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

import idna

from certbotk8s.core.sources.text import quote

MAX_NAME_OCTETS = 253
MAX_LABEL_OCTETS = 63

_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$"
)


class InvalidHostname(ValueError):
    """A host name that cannot be put in a certificate order."""


def _fail(raw: str, why: str) -> InvalidHostname:
    return InvalidHostname(f"invalid host name {quote(raw)}: {why}")


def _is_ip_literal(text: str) -> bool:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _check_lengths(raw: str, labels: list[str]) -> None:
    for label in labels:
        if len(label) > MAX_LABEL_OCTETS:
            raise _fail(raw, f"label {quote(label, 20)} is longer than {MAX_LABEL_OCTETS} octets")
    # A wildcard adds 2 octets; normalize_host checks the final length again.
    if len(".".join(labels)) > MAX_NAME_OCTETS:
        raise _fail(raw, f"longer than {MAX_NAME_OCTETS} octets")


def _to_a_labels(raw: str, name: str) -> str:
    """A valid, non-wildcard name (>= 1 label) as lower-case A-labels."""
    labels = name.split(".")
    if any(label == "" for label in labels):
        raise _fail(raw, "empty label (two dots in a row or a leading dot)")
    if any("*" in label for label in labels):
        raise _fail(raw, "'*' is only allowed as the whole leftmost label ('*.example.com')")
    if name.isascii():
        _check_lengths(raw, name.split("."))
    try:
        encoded = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise _fail(raw, str(e)) from e
    except UnicodeError as e:  # idna raises plain UnicodeError for some over-long input
        raise _fail(raw, str(e)) from e
    encoded = encoded.lower()
    _check_lengths(raw, encoded.split("."))
    for label in encoded.split("."):
        if not _LDH_LABEL.match(label):
            raise _fail(raw, f"label {quote(label)} may hold only letters, digits, inner hyphens")
    return encoded


@lru_cache(maxsize=65536)  # every reconcile re-normalises every source's hosts
def normalize_host(raw: str) -> str:
    """The lower-case A-label form of `raw`, trailing dot removed.

    Raises InvalidHostname for an empty name, an IP literal, a single-label name, a name or
    label that is too long, characters outside IDNA/LDH, and any wildcard other than a leading
    `*.` followed by at least two labels (Let's Encrypt's rule).
    """
    if len(raw) > 4 * MAX_NAME_OCTETS:  # no IDNA work on megabytes of tenant text
        raise _fail(raw, f"longer than {MAX_NAME_OCTETS} octets")
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise _fail(raw, "empty")
    if _is_ip_literal(name):
        raise _fail(raw, "IP addresses are not supported")
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if name == "*":
        raise _fail(raw, "'*' alone is not a host name")
    encoded = _to_a_labels(raw, base)
    labels = encoded.split(".")
    if len(labels) < 2:
        if wildcard:
            raise _fail(raw, "a wildcard needs at least two labels after '*.'")
        raise _fail(raw, "single-label names cannot get a public certificate")
    if labels[-1].isdigit():
        raise _fail(raw, "the top-level label must not be all digits")
    result = f"*.{encoded}" if wildcard else encoded
    if len(result) > MAX_NAME_OCTETS:
        raise _fail(raw, f"longer than {MAX_NAME_OCTETS} octets")
    return result


def is_wildcard(host: str) -> bool:
    """True for a wildcard name (`*.example.com`)."""
    return host.startswith("*.")


# Names no public CA validates and that, inside a cluster, name its own services (RFC 6761,
# RFC 6762, ICANN's `.internal`, the cluster DNS domain): refused unless the config allows one.
SPECIAL_USE_SUFFIXES = ("cluster.local", "internal", "local", "localhost")


def _ends_with(host: str, suffix: str) -> bool:
    return host == suffix or host.endswith("." + suffix)


def special_use_suffix(host: str, allowed: tuple[str, ...] = ()) -> str | None:
    """The special-use suffix `host` (normalised) ends with, unless it also ends with one of
    `allowed` (`local` allows every `.local` name, `svc.cluster.local` only those); else None."""
    base = host.removeprefix("*.")
    found = next((s for s in SPECIAL_USE_SUFFIXES if _ends_with(base, s)), None)
    if found is None or any(_ends_with(base, a) for a in allowed):
        return None
    return found


def normalize_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Every host normalised, sorted and unique. Raises InvalidHostname on the first bad one."""
    return tuple(sorted({normalize_host(h) for h in hosts}))


def is_dns1123_label(value: str) -> bool:
    """A Kubernetes DNS-1123 label: namespace names and the like."""
    return bool(_DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    """A Kubernetes DNS-1123 subdomain: Secret names and the like."""
    return len(value) <= MAX_NAME_OCTETS and bool(_DNS1123_SUBDOMAIN.match(value))
