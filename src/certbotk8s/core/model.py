"""Frozen value types shared by discovery, policy, planning and the adapters."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class KeyType(enum.Enum):
    """Certificate key types, named as in the `certbotk8s.io/key-type` annotation."""

    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


class ChallengeType(enum.Enum):
    HTTP01 = "http-01"
    DNS01 = "dns-01"


class SourceKind(enum.Enum):
    """What a desired certificate came from (one row of DESIGN.md's table)."""

    INGRESS = "Ingress"
    ISTIO_GATEWAY = "IstioGateway"
    ISTIO_FILE_MOUNT = "IstioGatewayFileMount"
    GATEWAY_API = "Gateway"
    # The config's own certificates: every entry of `certificates` (the `defaultCertificate`
    # alias is one); the operator's, so exempt from tenant host and provider scopes.
    CONFIG_CERTIFICATE = "ConfigCertificate"


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A namespaced Kubernetes object, enough to post an Event on it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""
    # metadata.creationTimestamp as the API server set it (RFC 3339 UTC; "" when unknown):
    # what tenants cannot forge, so it ranks simultaneous claims of a host (core.sources.ownership).
    created: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class SecretRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class HttpRouting:
    """How HTTP-01 traffic for the source's hosts reaches the solver.

    `ingress_class` for an Ingress source; `gateway` (namespace/name) for Istio and
    Gateway API; `listener` is the Gateway API listener (sectionName) or Istio port-80
    server name when known; `namespace` is the source's own namespace.
    """

    kind: SourceKind
    ingress_class: str | None = None
    gateway: ObjectRef | None = None
    listener: str | None = None
    namespace: str = ""

    @property
    def source_namespace(self) -> str:
        """Where the proxy reads routes for this source: the Gateway's namespace (a `./host`
        Istio server, an `allowedRoutes: Same` listener), else the source's own."""
        return self.gateway.namespace if self.gateway is not None else self.namespace


@dataclass(frozen=True)
class CertificateSpec:
    """What a certificate must look like. Hosts are normalised A-labels, sorted, unique."""

    hosts: tuple[str, ...]
    issuer: str
    challenge: ChallengeType = ChallengeType.HTTP01
    dns_provider: str | None = None
    key_type: KeyType = KeyType.ECDSA_P256
    profile: str | None = None
    renew_before: timedelta | None = None


@dataclass(frozen=True)
class SourcePart:
    """One source's share of a certificate several sources make together (the Istio file
    mount): its hosts, and how HTTP-01 reaches it."""

    source: ObjectRef
    hosts: tuple[str, ...]
    routing: HttpRouting | None = None


@dataclass(frozen=True)
class DesiredCertificate:
    """One Secret that must hold a certificate for `spec`, wanted by `source`; `parts`: the
    sources whose hosts make it up, when there are several (the first is `source`), so that
    one of them can be left out alone."""

    secret: SecretRef
    spec: CertificateSpec
    source: ObjectRef
    source_kind: SourceKind
    routing: HttpRouting | None = None
    parts: tuple[SourcePart, ...] = ()


@dataclass(frozen=True)
class SourceProblem:
    """A source (or part of one) that was refused; becomes a log line and an Event."""

    source: ObjectRef
    reason: str  # CamelCase Event reason, e.g. "InvalidAnnotation"
    message: str


@dataclass(frozen=True)
class Discovery:
    desired: tuple[DesiredCertificate, ...] = ()
    problems: tuple[SourceProblem, ...] = ()
    # Worth telling the source's owner, refusing nothing (Normal Events), e.g. ignored
    # cert-manager annotations.
    notices: tuple[SourceProblem, ...] = ()


@dataclass(frozen=True)
class CertificateInfo:
    """What a PEM certificate says about itself (parsed by core.pki.certs)."""

    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    serial: str  # hex
    key_type: KeyType | None
    ari_cert_id: str  # RFC 9773 base64url(AKI) "." base64url(serial)
    issuer: str = field(default="", compare=False)  # the issuer DN, for people (capped)

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before


@dataclass(frozen=True)
class RenewalWindow:
    """ARI suggested window (RFC 9773) for the certificate `cert_id` (its ARI CertID)."""

    start: datetime
    end: datetime
    cert_id: str = ""


class CaVerdict(enum.Enum):
    """Whether the CA of the issuer a certificate is wanted from knows the certificate a Secret
    holds, when this installation never recorded issuing or adopting it (a Secret taken over
    from cert-manager, kube-lego, or a lost record): asked through the CA's ARI endpoint,
    which answers 404 for a certificate it did not issue."""

    UNCHECKED = "unchecked"  # not asked, no answer yet, or the CA offers no ARI
    KNOWN = "known"  # the CA answered with a renewal window: its own certificate
    UNKNOWN = "unknown"  # the CA answered 404: another CA's certificate


@dataclass(frozen=True)
class ObservedSecret:
    """A Secret as the store found it. `certificate` is None when missing or unparsable."""

    ref: SecretRef
    managed: bool
    resource_version: str
    certificate: CertificateInfo | None = None
    key_matches: bool = False
    # The controller's own record of this Secret (core.state.records), joined in by the caller from
    # the records store: never the Secret's annotations, which tenants can write.
    recorded: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    parse_error: str | None = None
    # `certbotk8s renew NAMESPACE/SECRET` asked for a new certificate at this time (the
    # Secret's RENEW_REQUESTED_AT annotation: a request for this Secret only, never a fact).
    renew_requested: str = field(default="", compare=False)
    # What the Secret's writer said issued it (cert-manager's `cert-manager.io/issuer-name`):
    # tenant-writable, for messages only.
    claimed_issuer: str = field(default="", compare=False)
    # The CA's answer about this certificate (joined in by the caller, like `recorded`).
    ca_verdict: CaVerdict = field(default=CaVerdict.UNCHECKED, compare=False)


@dataclass(frozen=True)
class IssuedCertificate:
    """Result of one ACME order: PEM private key, PEM leaf + chain, and what it says."""

    key_pem: bytes = field(repr=False)
    fullchain_pem: bytes
    info: CertificateInfo
    order_url: str
    replaced: str | None = None  # the ARI CertID this order named in `replaces`
