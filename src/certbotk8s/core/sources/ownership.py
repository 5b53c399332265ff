"""Host ownership: which namespace may ask for which host (pure).

Runs after discovery and before anything is planned or solved, so no DNS provider, HTTP-01
route or ACME order ever sees a refused host. Three checks, in order, each refusing the whole
certificate (never a part of it, which would silently change it), except that the Istio
file-mount certificate, made of several Gateways' parts, loses only the parts with a held
host (each refused with an Event on its own Gateway, as discovery leaves out a Gateway with a
wildcard or a host outside its namespace's patterns):

1. TooManyHosts: more names than `tenants.maxHostsPerCertificate` (the CA allows 100).
2. HostNotAllowed: with `tenants.hostPatterns` configured, every host must match one of the
   patterns of the source's namespace. `a.example.org` matches itself; `*.a.example.com`
   matches any name under `a.example.com` (any depth, wildcards included), not the apex.
3. HostClaimed (first-claimant protection, unless `tenants.shareHosts`): one namespace holds a
   host; a Secret in any other namespace is refused it. Decided only from what tenants cannot
   forge: the controller's own records (core.state.records: a certificate it wrote for that
   namespace, its claim kept `tenants.claimGraceSeconds` after its source went away) and the
   sources with their API-server-set creation time. Holders first, the oldest claim first; then
   new claimants, the oldest source first (ties by namespace and name), those whose first
   issuance keeps failing last (no squatting with a source that cannot pass the challenge):
   of two namespaces that
   ask for a free host at the same moment exactly one gets it, the same one on every pass and
   in both modes. A labelled Secret or its annotations never claim anything. Names are
   compared by what a certificate for them would be valid for: `*.example.com` and
   `shop.example.com` conflict (one label deep, never the apex), `*.example.com` and
   `a.b.example.com` or `*.b.example.com` do not. The namespace that claims is the source's
   (core.sources.claimants): two Istio Gateways in `shop` and `pay` writing into `istio-system`
   are two claimants.

Last, one Secret holds one key, so it goes to one namespace: when sources of several namespaces
want the very same certificate in one Secret (two Istio Gateways naming one `credentialName`),
the namespace holding its hosts keeps it (with first-claimant protection the others are
`HostClaimed`); with `tenants.shareHosts` the namespace it was last written for, else the
oldest source, and the others get SecretConflict.

The config's own certificates (`certificates`) are the operator's and are exempt from 2 and 3.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from certbotk8s.core.config.settings import Config, TenantsConfig
from certbotk8s.core.model import (
    CertificateSpec,
    DesiredCertificate,
    Discovery,
    ObjectRef,
    SecretRef,
    SourceKind,
    SourcePart,
    SourceProblem,
)
from certbotk8s.core.sources.claimants import claimant, claimant_namespace, outside_patterns
from certbotk8s.core.sources.discovery import KubeObject, Reasons, discover
from certbotk8s.core.sources.host_memo import HostMemo
from certbotk8s.core.sources.names import is_wildcard
from certbotk8s.core.sources.text import escape_controls, few
from certbotk8s.core.state import records as rec
from certbotk8s.core.state import secret_meta


class OwnershipReasons:
    TOO_MANY_HOSTS = "TooManyHosts"
    HOST_NOT_ALLOWED = Reasons.HOST_NOT_ALLOWED
    HOST_CLAIMED = "HostClaimed"
    SECRET_CONFLICT = Reasons.SECRET_CONFLICT


@dataclass(frozen=True)
class Holding:
    """A certificate the controller wrote (its record): where, its hosts, the source it was
    written for, and since when it holds them (None: unknown, ranks last)."""

    secret: SecretRef
    hosts: tuple[str, ...]
    source: str = ""
    since: datetime | None = None

    @property
    def namespace(self) -> str:
        """The namespace holding the hosts (core.sources.claimants)."""
        return claimant_namespace(self.secret, self.source)


def holdings(records: Mapping[SecretRef, rec.Record], now: datetime,
             grace: timedelta) -> list[Holding]:
    """The claims the controller's records make now (a lapsed claim holds nothing)."""
    return [Holding(ref, hosts, record.get(secret_meta.SOURCE, ""), rec.claim_since(record))
            for ref, record in records.items()
            if (hosts := rec.claimed_hosts(record, now, grace))]


def order_share_key(desired: DesiredCertificate) -> tuple[str, str, CertificateSpec]:
    """Desired certificates with equal keys may share one order, and so one private key.

    The Secret's namespace and the claimant's are part of it: a key is never written into two
    namespaces, nor given to two tenants, however alike the requests (a tenant copying
    another's hosts must not receive the other's key; two Istio Gateways of `shop` and `pay`
    writing into `istio-system` are two tenants).
    """
    return (desired.secret.namespace, claimant(desired), desired.spec)


def discover_owned(
    ingresses: Iterable[KubeObject],
    istio_gateways: Iterable[KubeObject],
    gateway_api_gateways: Iterable[KubeObject],
    reference_grants: Iterable[KubeObject],
    config: Config,
    holdings: Iterable[Holding],
    failing: Collection[SecretRef] = (),
    memo: HostMemo | None = None,
) -> Discovery:
    """`discover`, then `enforce`: what may be issued, given the claims the controller's records
    make (`holdings`) and the Secrets whose first issuance keeps failing (`failing`); `memo`
    as for `discover`."""
    held = list(holdings)
    found = discover(ingresses, istio_gateways, gateway_api_gateways, reference_grants, config,
                     holders={h.secret: h.source for h in held}, memo=memo)
    return enforce(found, config.tenants, held, failing)


def _names(hosts: Iterable[str]) -> str:
    return few(sorted(hosts))


def enforce(found: Discovery, tenants: TenantsConfig, holdings: Iterable[Holding],
            failing: Collection[SecretRef] = ()) -> Discovery:
    """`found` with every desired certificate that fails a check moved to its problems."""
    holdings = list(holdings)  # read twice: the claims, then each Secret's holder
    problems = list(found.problems)
    admitted: list[DesiredCertificate] = []
    for d in found.desired:
        problem = _cap(d, tenants) or _patterns(d, tenants)
        if problem is None:
            admitted.append(d)
        else:
            problems.append(problem)
    kept = admitted
    if not tenants.share_hosts:
        claims = _Claims(holdings)
        taken: dict[int, DesiredCertificate] = {}
        for d in sorted(admitted, key=lambda d: _claim_rank(d, failing)):
            admitted_as, refusals = claims.take(d)
            problems += refusals
            if admitted_as is not None:
                taken[id(d)] = admitted_as
        kept = [taken[id(d)] for d in admitted if id(d) in taken]
    kept, conflicts = _one_namespace_per_secret(kept, holdings, failing)
    problems += conflicts
    safe = [SourceProblem(p.source, p.reason, escape_controls(p.message)) for p in problems]
    safe.sort(key=lambda p: (p.source, p.reason, p.message))
    return Discovery(desired=tuple(kept), problems=tuple(safe), notices=found.notices)


def _cap(d: DesiredCertificate, tenants: TenantsConfig) -> SourceProblem | None:
    if len(d.spec.hosts) <= tenants.max_hosts_per_certificate:
        return None
    return SourceProblem(
        d.source, OwnershipReasons.TOO_MANY_HOSTS,
        f"Secret {d.secret} would need {len(d.spec.hosts)} names in one certificate "
        f"(at most {tenants.max_hosts_per_certificate})")


def _patterns(d: DesiredCertificate, tenants: TenantsConfig) -> SourceProblem | None:
    if tenants.host_patterns is None or d.source_kind in (SourceKind.CONFIG_CERTIFICATE,
                                                          SourceKind.ISTIO_FILE_MOUNT):
        return None  # the file mount's Gateways: each against its own namespace, in discovery
    namespace = d.source.namespace
    outside = outside_patterns(tenants.host_patterns.get(namespace, ()), d.spec.hosts)
    if not outside:
        return None
    return SourceProblem(
        d.source, OwnershipReasons.HOST_NOT_ALLOWED,
        f"namespace {namespace} may not ask for {_names(outside)}: the config's "
        f"tenants.hostPatterns.{namespace} lists no pattern for it (add one, or set "
        "tenants.allowAnyHost: true to let every namespace ask for any host)")


def _claim_rank(d: DesiredCertificate, failing: Collection[SecretRef]
                ) -> tuple[bool, bool, str, str, str]:
    """New claimants in order of their source's creation (unknown last), then by name; those
    whose first issuance keeps failing after all others (an old source that cannot pass the
    challenge must not squat a host its real owner asks for later)."""
    created = d.source.created
    return (d.secret in failing, not created, created, d.secret.namespace, d.secret.name)


def _one_namespace_per_secret(
    kept: list[DesiredCertificate], holdings: Iterable[Holding], failing: Collection[SecretRef]
) -> tuple[list[DesiredCertificate], list[SourceProblem]]:
    """One claimant namespace per Secret: discovery keeps one source per namespace of the
    sources that want the same certificate in one Secret; the source the Secret was last
    written for keeps it, else the first in claim order, and the rest are refused."""
    holder = {h.secret: h.source for h in holdings}
    by_secret: dict[SecretRef, list[DesiredCertificate]] = {}
    for d in kept:
        by_secret.setdefault(d.secret, []).append(d)
    refused: list[SourceProblem] = []
    result: list[DesiredCertificate] = []
    for secret, wanting in by_secret.items():
        wanting.sort(key=lambda d: (str(d.source) != holder.get(secret),
                                    _claim_rank(d, failing), d.source))
        keeper = wanting[0]
        result.append(keeper)
        for other in wanting[1:]:
            refused.append(SourceProblem(
                other.source, OwnershipReasons.SECRET_CONFLICT,
                f"Secret {secret} is wanted by {keeper.source} of namespace "
                f"{claimant(keeper)} too, which keeps it: one Secret holds one private key, "
                "never shared between namespaces (name another Secret)"))
    return result, refused


def failing_claims(records: Mapping[SecretRef, rec.Record]) -> set[SecretRef]:
    """Secrets that never got a certificate (their record holds no hosts) and whose orders
    failed: their claim ranks after every other new claimant's."""
    return {ref for ref, record in records.items()
            if secret_meta.HOSTS not in record and secret_meta.parse_failures(record).failures}


_ANY = datetime(2000, 1, 1, tzinfo=UTC)  # stands in for an unknown time (sorted after others)


def _parent(host: str) -> str:
    """The name one label up (`shop.example.com` -> `example.com`; `*.a.b` -> `a.b`)."""
    return host.split(".", 1)[1]


class _Claims:
    """First-claimant protection: the namespace that owns each host, holders first.

    Two names conflict when the sets of names their certificates would be valid for overlap:
    equal names; a wildcard and a name exactly one label below its base (`*.example.com` and
    `shop.example.com`, as X.509 wildcards match one label, never the apex). Indexed by parent
    domain, so each check looks at one or two entries, never at every host.
    """

    def __init__(self, holdings: Iterable[Holding]) -> None:
        self.owner: dict[str, str] = {}  # name (plain or wildcard) -> the namespace holding it
        # parent domain -> namespace -> one plain name it holds directly below that parent
        self.below: dict[str, dict[str, str]] = {}
        for holding in sorted(holdings, key=lambda h: (h.since is None, h.since or _ANY,
                                                       h.secret)):
            mine = holding.namespace
            for host in holding.hosts:
                if not self._rival(host, mine):
                    self._own(host, mine)

    def _rival(self, host: str, mine: str) -> bool:
        """Another namespace holds `host`, a wildcard covering it, or a name it covers."""
        if self.owner.get(host, mine) != mine:
            return True
        if is_wildcard(host):
            return any(ns != mine for ns in self.below.get(host[2:], ()))
        if "." not in host:
            return False
        return self.owner.get("*." + _parent(host), mine) != mine

    def _own(self, host: str, mine: str) -> None:
        self.owner.setdefault(host, mine)
        if not is_wildcard(host) and "." in host:
            self.below.setdefault(_parent(host), {}).setdefault(mine, host)

    def take(self, d: DesiredCertificate
             ) -> tuple[DesiredCertificate | None, list[SourceProblem]]:
        """Admit `d` (its namespace then owns its free hosts), or say why not. A certificate
        made of several sources' parts (the Istio file mount) loses only the parts with a
        held host, each refused on its own source: one Gateway cannot stop the others'."""
        if d.source_kind is SourceKind.CONFIG_CERTIFICATE:
            return d, []
        mine = claimant(d)
        if d.parts:
            return self._take_parts(d, mine)
        held = [h for h in d.spec.hosts if self._rival(h, mine)]
        if held:
            return None, [self._refusal(d.source, held, d.secret)]
        for host in d.spec.hosts:
            self._own(host, mine)
        return d, []

    def _take_parts(self, d: DesiredCertificate, mine: str
                    ) -> tuple[DesiredCertificate | None, list[SourceProblem]]:
        kept: list[SourcePart] = []
        refusals: list[SourceProblem] = []
        for part in d.parts:
            held = [h for h in part.hosts if self._rival(h, mine)]
            if held:
                refusals.append(self._refusal(part.source, held, d.secret, left_out=True))
            else:
                kept.append(part)
        if not kept:
            return None, refusals
        hosts = tuple(sorted({h for part in kept for h in part.hosts}))
        for host in hosts:
            self._own(host, mine)
        first = kept[0]
        return replace(d, spec=replace(d.spec, hosts=hosts), source=first.source,
                       routing=first.routing, parts=tuple(kept)), refusals

    @staticmethod
    def _refusal(source: ObjectRef, held: list[str], secret: SecretRef,
                 left_out: bool = False) -> SourceProblem:
        outcome = (f"its hosts are left out of the shared certificate {secret}" if left_out
                   else f"not issued into {secret}")
        return SourceProblem(
            source, OwnershipReasons.HOST_CLAIMED,
            f"{_names(held)} already held (or covered by a wildcard held) by a certificate "
            f"in another namespace; {outcome} (tenants.shareHosts in the config)")
