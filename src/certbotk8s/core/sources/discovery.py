"""Sources (Ingress, Istio Gateway, Gateway API Gateway, config) -> desired certificates.

Objects come as the API returns them in JSON form (camelCase keys). Only opted-in sources are
read (see core.sources.annotations); the config's own certificates (`certificates`, with
`defaultCertificate` as one entry) always are. DESIGN.md's table is the contract; the choices
below are where it is silent:

- An invalid annotation refuses the whole source (one InvalidAnnotation problem per annotation).
- An invalid host name is reported (InvalidHostname) and dropped; the rest of the source is still
  served. A Secret left with no valid host is not issued.
- A wildcard under http-01 refuses the certificate (Secret) it is in (WildcardNeedsDns01); other
  Secrets of the same source are still served. For the Istio file mount, the contributing
  Gateway with the wildcard is left out of the shared certificate.
- Within one source, entries that name the same Secret are merged (union of hosts).
- A Secret claimed by several sources: identical specs -> one desired certificate per
  claimant namespace (core.sources.claimants; the smallest source by kind, namespace, name of
  each, also for routing), of which core.sources.ownership keeps one; different specs ->
  SecretConflict on
  every claimant, and only the claimant the Secret was last written for (`holders`) keeps it:
  a later claimant can never stop the first one's renewals. The Istio file-mount certificate
  is one claim; its Gateways must agree on issuer, challenge, key type, profile and
  renew-before, else each gets SecretConflict. With `tenants.hostPatterns`, a file-mount
  Gateway with a host outside its own namespace's patterns is left out of it (HostNotAllowed);
  its Gateways are its `parts`, so that core.sources.ownership can leave out one whose host
  another namespace holds (HostClaimed) and keep the others'.
- Istio: only `port.protocol: HTTPS` servers whose tls.mode is SIMPLE, MUTUAL or
  OPTIONAL_MUTUAL (default SIMPLE).
- Istio and Gateway API Gateways: the apiVersions of `core.sources.resources` (v1 or v1beta1;
  others: UnsupportedApiVersion), the table both modes list and watch from.
- Gateway API: `tls.mode` defaults to Terminate (as in the API); a listener without hostname
  that has certificateRefs is reported (NoHosts); refs other than core Secrets are reported
  (UnsupportedCertificateRef).
- Secret names must be DNS-1123 subdomains (InvalidSecretName).
- Special-use names (`.cluster.local`, `.internal`, `.local`, `.localhost`) are reported and
  dropped like invalid ones (SpecialUseName) unless `tenants.allowedSpecialUseSuffixes` allows
  them.
- Tenant input is bounded: a source lists at most MAX_SOURCE_HOSTS host entries (TooManyHosts),
  and reports at most MAX_PROBLEMS_PER_SOURCE problems (the rest are counted in one more).
  Nothing a source holds can raise out of `discover`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice

from certbotk8s.core.config.certificates import DEFAULT_CERTIFICATE_NAME
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import (
    CertificateSpec,
    ChallengeType,
    DesiredCertificate,
    Discovery,
    HttpRouting,
    ObjectRef,
    SecretRef,
    SourceKind,
    SourcePart,
    SourceProblem,
)
from certbotk8s.core.sources import annotations as ann
from certbotk8s.core.sources import cert_manager
from certbotk8s.core.sources.claimants import ISTIO_LEGACY_SECRET, claimant, outside_patterns
from certbotk8s.core.sources.host_memo import HostMemo, NormalisedHosts
from certbotk8s.core.sources.names import (
    InvalidHostname,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_wildcard,
    normalize_host,
    special_use_suffix,
)
from certbotk8s.core.sources.resources import GATEWAY_API_GATEWAYS, INGRESSES, ISTIO_GATEWAYS
from certbotk8s.core.sources.text import escape_controls, few, quote

KubeObject = Mapping[str, object]

INGRESS_API = INGRESSES.first_api_version
ISTIO_APIS = ISTIO_GATEWAYS.api_versions
GATEWAY_APIS = GATEWAY_API_GATEWAYS.api_versions
GATEWAY_API_GROUP = GATEWAY_API_GATEWAYS.group
ISTIO_LEGACY_CERT_DIR = "/etc/istio/ingressgateway-certs/"
ISTIO_TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"})
MAX_SOURCE_HOSTS = 1000  # host entries read from one source; beyond: refused, not normalised
MAX_PROBLEMS_PER_SOURCE = 10  # Events per source and pass; the rest are summarised


class Reasons:
    """SourceProblem reasons (CamelCase, as Kubernetes Event reasons)."""

    INVALID_ANNOTATION = ann.INVALID_ANNOTATION
    ISSUER_NOT_ALLOWED = ann.ISSUER_NOT_ALLOWED
    PROFILE_NOT_ALLOWED = ann.PROFILE_NOT_ALLOWED
    INVALID_HOSTNAME = "InvalidHostname"
    WILDCARD_NEEDS_DNS01 = "WildcardNeedsDns01"
    OUTSIDE_DNS_ZONES = "OutsideDnsZones"
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
    REF_NOT_PERMITTED = "RefNotPermitted"
    SECRET_CONFLICT = "SecretConflict"
    MISSING_SECRET_NAME = "MissingSecretName"
    INVALID_SECRET_NAME = "InvalidSecretName"
    NO_HOSTS = "NoHosts"
    UNSUPPORTED_API_VERSION = "UnsupportedApiVersion"
    UNSUPPORTED_CERTIFICATE_REF = "UnsupportedCertificateRef"
    TOO_MANY_HOSTS = "TooManyHosts"
    TOO_MANY_PROBLEMS = "TooManyProblems"
    SPECIAL_USE_NAME = "SpecialUseName"
    HOST_NOT_ALLOWED = "HostNotAllowed"
    ISSUER_NOT_MAPPED = cert_manager.ISSUER_NOT_MAPPED


ANNOTATION_IGNORED = "AnnotationIgnored"  # a notice (Normal Event), not a refusal


def config_certificate_source(config: Config,
                              name: str = DEFAULT_CERTIFICATE_NAME) -> ObjectRef:
    """The ObjectRef standing for the config's certificate `name` (an entry of `certificates`;
    the `defaultCertificate` alias by default): Events on it go to the controller namespace."""
    return ObjectRef("certbotk8s.io/v1", "Config", config.controller_namespace, name)


# -- JSON access ---------------------------------------------------------------------------


def _map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Mapping[str, object]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _annotations(obj: KubeObject) -> dict[str, str]:
    raw = _map(_map(obj.get("metadata")).get("annotations"))
    return {k: v for k, v in raw.items() if isinstance(v, str)}


def _ref(obj: KubeObject, api_version: str, kind: str) -> ObjectRef:
    meta = _map(obj.get("metadata"))
    return ObjectRef(
        api_version=_str(obj.get("apiVersion")) or api_version,
        kind=_str(obj.get("kind")) or kind,
        namespace=_str(meta.get("namespace")) or "default",
        name=_str(meta.get("name")) or "",
        uid=_str(meta.get("uid")) or "",
        created=_str(meta.get("creationTimestamp")) or "",
    )


# -- what informers keep -------------------------------------------------------------------

_KEPT_SPEC = {"Ingress": ("tls", "ingressClassName"), "Gateway": ("servers", "listeners"),
              "ReferenceGrant": ("from", "to")}
_KEPT_ANNOTATIONS = ann.SOURCE_ANNOTATIONS | {ann.TLS_ACME, ann.INGRESS_CLASS}
# One character past the longest value accepted (ours or cert-manager's): still refused as such.
_KEPT_VALUE = max(ann.MAX_VALUE, cert_manager.MAX_VALUE) + 1
ROLE_LABEL = "certbotk8s.io/role"


def trim_source(obj: KubeObject) -> dict[str, object]:
    """The parts of a source object `discover` reads, and nothing else (informer memory).

    Annotation values are cut one character past the longest accepted, so an over-long value
    is still refused as such. `discover(trimmed) == discover(original)` for any object.
    """
    meta = _map(obj.get("metadata"))
    annotations = {
        k: v[:_KEPT_VALUE]
        for k, v in _map(meta.get("annotations")).items()
        if isinstance(v, str) and (k in _KEPT_ANNOTATIONS or k.startswith(ann.PREFIX)
                                   or k.startswith(cert_manager.PREFIX))  # config `migration`
    }
    labels = _map(meta.get("labels"))
    kept_meta: dict[str, object] = {k: meta[k] for k in ("name", "namespace", "uid",
                                                        "creationTimestamp") if k in meta}
    kept_meta["annotations"] = annotations
    if ROLE_LABEL in labels:
        kept_meta["labels"] = {ROLE_LABEL: labels[ROLE_LABEL]}
    spec = _map(obj.get("spec"))
    kind = _str(obj.get("kind")) or ""
    kept_spec: dict[str, object] = {k: spec[k] for k in _KEPT_SPEC.get(kind, ()) if k in spec}
    if kind == "Ingress" and "rules" in spec:
        kept_spec["rules"] = [{"host": rule.get("host")} for rule in _list(spec.get("rules"))]
    trimmed: dict[str, object] = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    trimmed["metadata"] = kept_meta
    trimmed["spec"] = kept_spec
    return trimmed


# -- collecting ----------------------------------------------------------------------------


@dataclass
class _Group:
    """Hosts wanted in one Secret by one source, merged across its entries."""

    hosts: set[str] = field(default_factory=set)
    routing: HttpRouting | None = None


@dataclass
class _Collector:
    config: Config
    memo: HostMemo | None = None
    candidates: list[DesiredCertificate] = field(default_factory=list)
    problems: list[SourceProblem] = field(default_factory=list)
    notices: list[SourceProblem] = field(default_factory=list)
    host_entries: dict[ObjectRef, int] = field(default_factory=dict)

    def problem(self, source: ObjectRef, reason: str, message: str) -> None:
        self.problems.append(SourceProblem(source, reason, message))

    def options(
        self, obj: KubeObject, ref: ObjectRef, kind: SourceKind
    ) -> ann.SourceOptions | None:
        annotations = _annotations(obj)
        if not ann.is_opted_in(annotations, self.config):
            enabled = annotations.get(ann.ENABLED)
            if enabled is not None and enabled.strip().lower() not in ("true", "false"):
                self.problem(
                    ref,
                    Reasons.INVALID_ANNOTATION,
                    f'annotation {ann.ENABLED}={quote(ann.echoed(enabled))}: must be "true" '
                    'or "false"',
                )
            return None
        options, errors = ann.parse_source_options(annotations, self.config, kind,
                                                  namespace=ref.namespace)
        for error in errors:
            self.problem(ref, error.reason, str(error))
        for notice in options.notices if options is not None else ():
            self.notices.append(SourceProblem(ref, ANNOTATION_IGNORED, notice))
        return options

    def versioned_options(
        self, obj: KubeObject, ref: ObjectRef, kind: SourceKind, supported: frozenset[str]
    ) -> ann.SourceOptions | None:
        """`options` for a kind read at several apiVersions: an opted-in source at a version
        outside `supported` is refused; one not opted in gets only a malformed `enabled`
        reported, whatever its version."""
        if ann.is_opted_in(_annotations(obj), self.config) and ref.api_version not in supported:
            self.problem(
                ref,
                Reasons.UNSUPPORTED_API_VERSION,
                f"apiVersion {quote(ref.api_version)} (supported: {', '.join(sorted(supported))})",
            )
            return None
        return self.options(obj, ref, kind)

    def hosts(self, ref: ObjectRef, raw_hosts: Iterable[str]) -> set[str]:
        entries = tuple(islice(raw_hosts, MAX_SOURCE_HOSTS + 1))
        self.host_entries[ref] = self.host_entries.get(ref, 0) + len(entries)
        if self.host_entries[ref] > MAX_SOURCE_HOSTS:
            return set()  # the whole source is refused in `emit`
        allowed = self.config.tenants.allowed_special_use_suffixes
        key = (entries, allowed)
        found = self.memo.get(key) if self.memo is not None else None
        if found is None:
            found = _normalised(entries, allowed)
            if self.memo is not None:
                self.memo.put(key, found)
        for reason, message in found.problems:
            self.problem(ref, reason, message)
        return set(found.hosts)

    def secret_ok(self, ref: ObjectRef, secret: SecretRef) -> bool:
        if not is_dns1123_subdomain(secret.name) or not is_dns1123_label(secret.namespace):
            self.problem(
                ref, Reasons.INVALID_SECRET_NAME,
                f"Secret {quote(str(secret))} is not a valid Secret name"
            )
            return False
        return True

    def wildcard_ok(self, ref: ObjectRef, hosts: Iterable[str], challenge: ChallengeType) -> bool:
        wildcards = sorted(h for h in hosts if is_wildcard(h))
        if wildcards and challenge is not ChallengeType.DNS01:
            self.problem(
                ref,
                Reasons.WILDCARD_NEEDS_DNS01,
                f"wildcard host(s) {few(wildcards)} need certbotk8s.io/challenge: dns-01",
            )
            return False
        return True

    def patterns_ok(self, ref: ObjectRef, hosts: Iterable[str], shared: SecretRef) -> bool:
        """`tenants.hostPatterns` of the source's own namespace, for a source whose hosts
        join others' in one certificate (core.sources.ownership checks the rest)."""
        patterns = self.config.tenants.host_patterns
        if patterns is None:
            return True
        outside = sorted(outside_patterns(patterns.get(ref.namespace, ()), hosts))
        if not outside:
            return True
        self.problem(ref, Reasons.HOST_NOT_ALLOWED,
                     f"namespace {ref.namespace} may not ask for {few(outside)}: left out of "
                     f"the shared certificate {shared} (tenants.hostPatterns.{ref.namespace} "
                     "in the config)")
        return False

    def dns_zones_ok(self, ref: ObjectRef, hosts: Iterable[str], options: ann.SourceOptions
                     ) -> bool:
        """The DNS provider's `zones` scope, checked before any order when the record names are
        known (no CNAME following): a host whose challenge record lies outside is refused."""
        provider = (self.config.dns_providers.get(options.dns_provider)
                    if options.challenge is ChallengeType.DNS01 and options.dns_provider else None)
        if provider is None or not provider.zones or provider.follow_cname:
            return True
        outside = sorted(h for h in hosts
                         if not provider.allows_name(f"_acme-challenge.{h.removeprefix('*.')}"))
        if outside:
            self.problem(ref, Reasons.OUTSIDE_DNS_ZONES,
                         f"host(s) {few(outside)} lie outside the zones DNS provider "
                         f"{provider.name!r} may write ({', '.join(provider.zones)})")
            return False
        return True

    def emit(
        self,
        ref: ObjectRef,
        kind: SourceKind,
        options: ann.SourceOptions,
        groups: Mapping[SecretRef, _Group],
    ) -> None:
        if self.host_entries.get(ref, 0) > MAX_SOURCE_HOSTS:
            self.problem(ref, Reasons.TOO_MANY_HOSTS,
                         f"more than {MAX_SOURCE_HOSTS} host entries; nothing is issued for it")
            return
        for secret in sorted(groups):
            group = groups[secret]
            if not group.hosts or not self.secret_ok(ref, secret):
                continue
            if not self.wildcard_ok(ref, group.hosts, options.challenge):
                continue
            if not self.dns_zones_ok(ref, group.hosts, options):
                continue
            self.candidates.append(
                DesiredCertificate(
                    secret=secret,
                    spec=options.spec(tuple(sorted(group.hosts))),
                    source=ref,
                    source_kind=kind,
                    routing=group.routing,
                )
            )


def _normalised(entries: tuple[str, ...], allowed: tuple[str, ...]) -> NormalisedHosts:
    """The valid hosts of one source entry; invalid and special-use names as problems."""
    hosts: set[str] = set()
    problems: list[tuple[str, str]] = []
    for raw in entries:
        try:
            host = normalize_host(raw)
        except InvalidHostname as e:
            problems.append((Reasons.INVALID_HOSTNAME, str(e)))
            continue
        if (suffix := special_use_suffix(host, allowed)) is not None:
            problems.append((Reasons.SPECIAL_USE_NAME,
                             f"{host} is a special-use name (.{suffix}) no public CA issues "
                             "for; dropped (tenants.allowedSpecialUseSuffixes in the config)"))
            continue
        hosts.add(host)
    return NormalisedHosts(frozenset(hosts), tuple(problems))


# -- Ingress -------------------------------------------------------------------------------


def _ingress(c: _Collector, obj: KubeObject) -> None:
    ref = _ref(obj, INGRESS_API, "Ingress")
    options = c.options(obj, ref, SourceKind.INGRESS)
    if options is None:
        return
    spec = _map(obj.get("spec"))
    ingress_class = _str(spec.get("ingressClassName")) or _str(
        _annotations(obj).get(ann.INGRESS_CLASS)
    )
    routing = HttpRouting(kind=SourceKind.INGRESS, ingress_class=ingress_class,
                          namespace=ref.namespace)
    groups: dict[SecretRef, _Group] = {}
    tls = _list(spec.get("tls"))
    if tls:
        for index, entry in enumerate(tls):
            secret_name = _str(entry.get("secretName"))
            raw_hosts = _strings(entry.get("hosts"))
            if secret_name is None:
                c.problem(ref, Reasons.MISSING_SECRET_NAME, f"spec.tls[{index}] has no secretName")
                continue
            if not raw_hosts:
                c.problem(ref, Reasons.NO_HOSTS, f"spec.tls[{index}] lists no hosts")
                continue
            group = groups.setdefault(SecretRef(ref.namespace, secret_name), _Group())
            group.hosts |= c.hosts(ref, raw_hosts)
            group.routing = routing
    else:
        raw_hosts = [h for rule in _list(spec.get("rules")) if (h := _str(rule.get("host")))]
        if not raw_hosts:
            c.problem(ref, Reasons.NO_HOSTS, "no spec.tls and no rules[].host")
            return
        group = groups.setdefault(SecretRef(ref.namespace, f"{ref.name}-tls"), _Group())
        group.hosts |= c.hosts(ref, raw_hosts)
        group.routing = routing
    c.emit(ref, SourceKind.INGRESS, options, groups)


# -- Istio Gateway -------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileMountClaim:
    source: ObjectRef
    options: ann.SourceOptions
    hosts: frozenset[str]
    routing: HttpRouting


def _istio_host(raw: str) -> str | None:
    """`ns/host` -> `host`; `*`, `ns/*` and empty are not hosts."""
    host = raw.split("/", 1)[1] if "/" in raw else raw
    host = host.strip()
    return None if host in ("", "*") else host


def _istio_http_listener(servers: list[Mapping[str, object]]) -> str | None:
    http = [
        s for s in servers if (_str(_map(s.get("port")).get("protocol")) or "").upper() == "HTTP"
    ]
    http.sort(key=lambda s: _map(s.get("port")).get("number") != 80)
    for server in http:
        name = _str(_map(server.get("port")).get("name")) or _str(server.get("name"))
        if name:
            return name
    return None


def _istio_gateway(c: _Collector, obj: KubeObject, file_mounts: list[_FileMountClaim]) -> None:
    ref = _ref(obj, ISTIO_GATEWAYS.first_api_version, "Gateway")
    options = c.versioned_options(obj, ref, SourceKind.ISTIO_GATEWAY, ISTIO_APIS)
    if options is None:
        return
    istio = c.config.istio
    target_ns = options.gateway_namespace or istio.gateway_namespace
    if target_ns != ref.namespace and target_ns not in istio.override_namespaces:
        allowed = ", ".join(istio.override_namespaces)
        c.problem(
            ref,
            Reasons.NAMESPACE_NOT_ALLOWED,
            f"annotation {ann.GATEWAY_NAMESPACE}: {target_ns} is not a configured gateway "
            f"namespace (allowed: {allowed}, or the Gateway's own; istio.gatewayNamespaces)",
        )
        return
    if ref.namespace != target_ns and ref.namespace not in istio.allowed_source_namespaces:
        c.problem(
            ref,
            Reasons.NAMESPACE_NOT_ALLOWED,
            f"Gateways in namespace {ref.namespace} may not write Secrets to {target_ns}; "
            "add the namespace to istio.allowedSourceNamespaces",
        )
        return
    servers = _list(_map(obj.get("spec")).get("servers"))
    routing = HttpRouting(
        kind=SourceKind.ISTIO_GATEWAY, gateway=ref, listener=_istio_http_listener(servers),
        namespace=ref.namespace,
    )
    groups: dict[SecretRef, _Group] = {}
    mounted: set[str] = set()
    for index, server in enumerate(servers):
        protocol = (_str(_map(server.get("port")).get("protocol")) or "").upper()
        tls = _map(server.get("tls"))
        mode = (_str(tls.get("mode")) or "SIMPLE").upper()
        if protocol != "HTTPS" or mode not in ISTIO_TERMINATING_MODES:
            continue
        credential = _str(tls.get("credentialName"))
        server_cert = _str(tls.get("serverCertificate")) or ""
        if credential is None and not server_cert.startswith(ISTIO_LEGACY_CERT_DIR):
            continue  # certificates the user manages
        raw_hosts = [h for raw in _strings(server.get("hosts")) if (h := _istio_host(raw))]
        if not raw_hosts:
            c.problem(ref, Reasons.NO_HOSTS, f"spec.servers[{index}] has no host but '*'")
            continue
        hosts = c.hosts(ref, raw_hosts)
        if credential is not None:
            group = groups.setdefault(SecretRef(target_ns, credential), _Group())
            group.hosts |= hosts
            group.routing = routing
        else:
            mounted |= hosts
    c.emit(ref, SourceKind.ISTIO_GATEWAY, options, groups)
    if mounted:
        file_mounts.append(_FileMountClaim(ref, options, frozenset(mounted), routing))


def _istio_file_mounts(c: _Collector, claims: list[_FileMountClaim]) -> None:
    """One certificate per gateway namespace for all legacy file-mount servers."""
    by_namespace: dict[str, list[_FileMountClaim]] = {}
    for claim in claims:
        target = claim.options.gateway_namespace or c.config.istio.gateway_namespace
        by_namespace.setdefault(target, []).append(claim)
    for namespace in sorted(by_namespace):
        secret = SecretRef(namespace, ISTIO_LEGACY_SECRET)
        usable = sorted(
            (
                claim
                for claim in by_namespace[namespace]
                if c.wildcard_ok(claim.source, claim.hosts, claim.options.challenge)
                and c.patterns_ok(claim.source, claim.hosts, secret)
            ),
            key=lambda claim: claim.source,
        )
        if not usable:
            continue
        specs = {claim.options.spec(()) for claim in usable}
        if len(specs) > 1:
            names = few([str(claim.source) for claim in usable])
            for claim in usable:
                c.problem(
                    claim.source,
                    Reasons.SECRET_CONFLICT,
                    f"Secret {secret} is shared by {names}, whose certbotk8s.io/* options differ",
                )
            continue
        first = usable[0]
        hosts: set[str] = set().union(*(claim.hosts for claim in usable))
        c.candidates.append(
            DesiredCertificate(
                secret=secret,
                spec=first.options.spec(tuple(sorted(hosts))),
                source=first.source,
                source_kind=SourceKind.ISTIO_FILE_MOUNT,
                routing=first.routing,
                parts=tuple(SourcePart(claim.source, tuple(sorted(claim.hosts)), claim.routing)
                            for claim in usable),
            )
        )


# -- Gateway API ---------------------------------------------------------------------------


def _grant_allows(grants: Iterable[KubeObject], gateway_ns: str, secret: SecretRef) -> bool:
    for grant in grants:
        if _str(_map(grant.get("metadata")).get("namespace")) != secret.namespace:
            continue
        spec = _map(grant.get("spec"))
        from_ok = any(
            f.get("group") == GATEWAY_API_GROUP
            and f.get("kind") == "Gateway"
            and f.get("namespace") == gateway_ns
            for f in _list(spec.get("from"))
        )
        to_ok = any(
            (t.get("group") or "") == ""
            and t.get("kind") == "Secret"
            and (not t.get("name") or t.get("name") == secret.name)
            for t in _list(spec.get("to"))
        )
        if from_ok and to_ok:
            return True
    return False


def _hostname_matches(listener_host: str | None, hosts: set[str]) -> bool:
    if listener_host is None:
        return True
    pattern = listener_host.lower()
    if pattern in hosts:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return any(h.endswith(suffix) and not is_wildcard(h) for h in hosts)
    return False


def _gateway_api(c: _Collector, obj: KubeObject, grants: list[KubeObject]) -> None:
    ref = _ref(obj, GATEWAY_API_GATEWAYS.first_api_version, "Gateway")
    options = c.versioned_options(obj, ref, SourceKind.GATEWAY_API, GATEWAY_APIS)
    if options is None:
        return
    listeners = _list(_map(obj.get("spec")).get("listeners"))
    groups: dict[SecretRef, _Group] = {}
    for index, listener in enumerate(listeners):
        protocol = _str(listener.get("protocol")) or ""
        tls = _map(listener.get("tls"))
        mode = _str(tls.get("mode")) or "Terminate"
        if not (protocol == "HTTPS" or (protocol == "TLS" and mode == "Terminate")):
            continue
        cert_refs = _list(tls.get("certificateRefs"))
        if not cert_refs:
            continue
        hostname = _str(listener.get("hostname"))
        label = f"spec.listeners[{index}]" + (
            f" ({quote(name)})" if (name := _str(listener.get("name"))) else ""
        )
        if hostname is None:
            c.problem(ref, Reasons.NO_HOSTS, f"{label} has no hostname")
            continue
        hosts = c.hosts(ref, [hostname])
        for cert_ref in cert_refs:
            group_name = _str(cert_ref.get("group")) or ""
            kind = _str(cert_ref.get("kind")) or "Secret"
            name = _str(cert_ref.get("name"))
            if group_name != "" or kind != "Secret" or name is None:
                named = f"{group_name or 'core'}/{kind}/{name}"
                c.problem(
                    ref,
                    Reasons.UNSUPPORTED_CERTIFICATE_REF,
                    f"{label}: certificateRef {quote(named)} is not a core Secret",
                )
                continue
            secret = SecretRef(_str(cert_ref.get("namespace")) or ref.namespace, name)
            if secret.namespace != ref.namespace and not _grant_allows(
                grants, ref.namespace, secret
            ):
                c.problem(
                    ref,
                    Reasons.REF_NOT_PERMITTED,
                    f"{label}: no ReferenceGrant in namespace {quote(secret.namespace)} lets "
                    f"Gateways from {ref.namespace} use Secret {quote(secret.name)}",
                )
                continue
            groups.setdefault(secret, _Group()).hosts.update(hosts)
    for group in groups.values():
        http_listener = next(
            (
                _str(lst.get("name"))
                for lst in listeners
                if _str(lst.get("protocol")) == "HTTP"
                and _hostname_matches(_str(lst.get("hostname")), group.hosts)
            ),
            None,
        )
        group.routing = HttpRouting(
            kind=SourceKind.GATEWAY_API, gateway=ref, listener=http_listener,
            namespace=ref.namespace,
        )
    c.emit(ref, SourceKind.GATEWAY_API, options, groups)


# -- the config's own certificates (`certificates`, `defaultCertificate`) ------------------


def _issuer_default_profile(config: Config, issuer: str) -> str | None:
    found = config.issuers.get(issuer)
    return found.default_profile if found is not None else None


def _config_certificates(c: _Collector) -> None:
    for entry in c.config.certificates:
        c.candidates.append(
            DesiredCertificate(
                secret=entry.secret,
                spec=CertificateSpec(
                    hosts=entry.hosts,
                    issuer=entry.issuer,
                    challenge=entry.challenge,
                    dns_provider=entry.dns_provider,
                    key_type=entry.key_type or c.config.renewal.key_type,
                    profile=entry.profile or _issuer_default_profile(c.config, entry.issuer),
                    renew_before=entry.renew_before or c.config.renewal.renew_before,
                ),
                source=config_certificate_source(c.config, entry.name),
                source_kind=SourceKind.CONFIG_CERTIFICATE,
            )
        )


# -- conflicts and result ------------------------------------------------------------------


def _source_order(d: DesiredCertificate) -> tuple[str, ObjectRef]:
    return (d.source_kind.value, d.source)


def _resolve(c: _Collector, holders: Mapping[SecretRef, str]) -> tuple[DesiredCertificate, ...]:
    by_secret: dict[SecretRef, list[DesiredCertificate]] = {}
    for candidate in c.candidates:
        by_secret.setdefault(candidate.secret, []).append(candidate)
    result: list[DesiredCertificate] = []
    for secret in sorted(by_secret):
        claims = sorted(by_secret[secret], key=_source_order)
        if len({claim.spec for claim in claims}) == 1:
            # One per claimant namespace: never one key for two tenants without a claim check
            # (core.sources.ownership keeps one of them).
            firsts: dict[str, DesiredCertificate] = {}
            for claim in claims:
                firsts.setdefault(claimant(claim), claim)
            result += firsts.values()
            continue
        names = few([str(claim.source) for claim in claims])
        first = next((claim for claim in claims if str(claim.source) == holders.get(secret)),
                     None)
        if first is not None:
            result.append(first)
        outcome = (f"{first.source} holds it first and keeps it" if first is not None
                   else "none of them is issued")
        for claim in claims:
            c.problem(
                claim.source,
                Reasons.SECRET_CONFLICT,
                f"Secret {secret} is claimed by {names} with different hosts or options; "
                f"{outcome}",
            )
    return tuple(result)


def _bounded(problems: Iterable[SourceProblem]) -> tuple[SourceProblem, ...]:
    """Sorted, unique, at most MAX_PROBLEMS_PER_SOURCE per source plus one summary; each
    message one line of at most 1 KiB (tenant text was quoted where it was put in)."""
    by_source: dict[ObjectRef, list[SourceProblem]] = {}
    safe = {SourceProblem(p.source, p.reason, escape_controls(p.message)) for p in problems}
    for problem in sorted(safe, key=lambda p: (p.source, p.reason, p.message)):
        by_source.setdefault(problem.source, []).append(problem)
    result: list[SourceProblem] = []
    for source, found in by_source.items():
        result += found[:MAX_PROBLEMS_PER_SOURCE]
        if len(found) > MAX_PROBLEMS_PER_SOURCE:
            result.append(SourceProblem(
                source, Reasons.TOO_MANY_PROBLEMS,
                f"{len(found) - MAX_PROBLEMS_PER_SOURCE} more problems not reported one by one"))
    return tuple(result)


def discover(
    ingresses: Iterable[KubeObject],
    istio_gateways: Iterable[KubeObject],
    gateway_api_gateways: Iterable[KubeObject],
    reference_grants: Iterable[KubeObject],
    config: Config,
    holders: Mapping[SecretRef, str] | None = None,
    memo: HostMemo | None = None,
) -> Discovery:
    """Desired certificates (sorted by Secret) and problems (sorted) for the given objects.

    `holders`: managed Secret -> the source (`Kind/namespace/name`) it was last written for;
    in a SecretConflict that source keeps the Secret. `memo`: the normalised hosts of the
    previous pass (core.sources.host_memo), for a caller that discovers again and again; the
    result is the same with or without it.
    """
    c = _Collector(config, memo)
    grants = _list(list(reference_grants))
    for obj in _list(list(ingresses)):
        _ingress(c, obj)
    file_mounts: list[_FileMountClaim] = []
    for obj in _list(list(istio_gateways)):
        _istio_gateway(c, obj, file_mounts)
    _istio_file_mounts(c, file_mounts)
    for obj in _list(list(gateway_api_gateways)):
        _gateway_api(c, obj, grants)
    _config_certificates(c)
    desired = _resolve(c, holders or {})
    if memo is not None:
        memo.end_pass()
    return Discovery(desired=desired, problems=_bounded(c.problems),
                     notices=_bounded(c.notices))
