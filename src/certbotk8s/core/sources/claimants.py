"""Who asks for a certificate, and which hosts that namespace may ask for (pure).

The claimant of a certificate is the namespace whose source asks for it: the namespace that
holds its hosts (first-claimant protection), whose share of the rate limits it spends, and
inside which alone identical requests may share one order and key. That is the source's
namespace, not the Secret's: an Istio Gateway in `shop` writes its `credentialName` Secret into
`istio-system`, and so does one in `pay`; they are two tenants, not one. Two exceptions take
the Secret's namespace: the Istio file-mount certificate (one Secret per gateway namespace
holding every file-mount Gateway's hosts; each Gateway's hosts are checked against its own
namespace's patterns in discovery) and the config's own certificates (the operator's).
"""

from __future__ import annotations

from collections.abc import Iterable

from certbotk8s.core.model import DesiredCertificate, SecretRef

ISTIO_LEGACY_SECRET = "istio-ingressgateway-certs"


def claimant_namespace(secret: SecretRef, source: str) -> str:
    """The claimant of `secret`'s certificate, asked for by `source` (`Kind/namespace/name`,
    as `str(ObjectRef)` and the controller's records write it; anything else: the Secret's)."""
    kind, _, rest = source.partition("/")
    namespace, slash, _ = rest.partition("/")
    if not slash or not namespace or kind == "Config":
        return secret.namespace
    if kind == "Gateway" and secret.name == ISTIO_LEGACY_SECRET:
        return secret.namespace
    return namespace


def claimant(desired: DesiredCertificate) -> str:
    """`claimant_namespace` of a desired certificate (the same rule as for a record, so a
    holding and the source that made it always agree)."""
    return claimant_namespace(desired.secret, str(desired.source))


def pattern_matches(pattern: str, host: str) -> bool:
    """`host` (normalised) is covered by `pattern` (normalised): `a.example.org` matches
    itself; `*.a.example.com` any name under `a.example.com` (any depth, wildcards included),
    not the apex."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def outside_patterns(patterns: Iterable[str], hosts: Iterable[str]) -> list[str]:
    """The hosts no pattern covers."""
    kept = tuple(patterns)
    return [h for h in hosts if not any(pattern_matches(p, h) for p in kept)]
