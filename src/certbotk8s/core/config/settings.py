"""The controller's configuration file: issuers, DNS providers, Istio, own certificates.

`load_config(text)` parses YAML, `parse_config(data)` validates the parsed document. Every error
names the path of the bad field (`issuers.pebble.directory: must be an https URL`); all errors of
one file are reported together in one ConfigError. Unknown keys are errors (typo protection).
Secrets (EAB HMAC, TSIG) are never in the file, only references to Kubernetes Secrets.

Example::

    controllerNamespace: certbotk8s
    defaultIssuer: letsencrypt
    issuers:
      letsencrypt:
        directory: https://acme-v02.api.letsencrypt.org/directory
        # email: you@your-domain    # optional account contact (not an example.* address)
        profiles: [classic, tlsserver, shortlived]  # exactly these (absent: the same three)
        # namespaces: [team-a]      # only these namespaces' sources may use it (absent: all)
        # defaultProfile: classic   # asked for when a source names no profile
        # eab: {secretRef: {name: eab, keyIdKey: kid, hmacKey: hmac}}
        # caBundle: /etc/certbotk8s/ca.pem
        # preferredChain: ISRG Root X1
        # rateLimits: {certificatesPerDomain: 50, certificatesPerIdentifierSet: 5,
        #              ordersPer3Hours: 300, failedAuthorizationsPerHour: 5,  # 0 = off
        #              namespaceOrderShare: 50, namespaceDomainShare: 50}  # percent
    defaultDnsProvider: bind
    dnsProviders:
      bind:
        type: rfc2136
        server: 10.0.0.53:53
        tsig: {keyName: certbotk8s., algorithm: hmac-sha256,
               secretRef: {name: tsig, key: secret}}
        # nameserverPort: 5353
        # resolver: 127.0.0.1:5353
    istio: {gatewayNamespace: istio-system, allowedSourceNamespaces: [],
            gatewayNamespaces: []}  # further namespaces certbotk8s.io/gateway-namespace may name
    tenants:
      hostPatterns:            # namespace -> the hosts it may ask for
        team-a: ["*.a.example.com", "a.example.org"]
      # allowAnyHost: true     # instead of hostPatterns: any namespace may ask for any host
      shareHosts: false        # true: a host held in one namespace may be asked for by another
      maxHostsPerCertificate: 100
      claimGraceSeconds: 3600  # a claim outlives its source this long (re-created in time: kept)
      allowedSpecialUseSuffixes: []  # .cluster.local, .internal, .local, .localhost: refused
    certificates:              # standalone certificates (core.config.certificates)
      - name: apps-wildcard
        hosts: ["*.apps.example.com"]
        secret: {namespace: ingress-nginx, name: default-tls}
        challenge: dns-01      # also: issuer, dnsProvider, keyType, profile, renewBefore
    # defaultCertificate: {hosts: [...], secret: {...}}  # an alias for one entry
    solver:
      http01: {pathType: ImplementationSpecific, selfCheck: true, port: 8089,
               listenAddress: 0.0.0.0, solverService: certbotk8s-solver, solverServicePort: 80,
               selfCheckPort: 80}  # selfCheckResolver: 127.0.0.1:5353, selfCheckNetworks: []
      dns01: {propagationTimeout: 300, pollInterval: 5}
      #        propagation: {mode: recursive, nameservers: ["10.0.0.10:53"]}
      orderTimeout: 120  # besides the propagation wait (core.renewal.waits)
    renewal: {renewBefore: 720h, keyType: ecdsa-p256}
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

import yaml

from certbotk8s.core.budget.ratelimit import Limits
from certbotk8s.core.config import dns_providers as config_dns
from certbotk8s.core.config import shape
from certbotk8s.core.config.certificates import (
    DEFAULT_CERTIFICATE_NAME,
    CertificateConfig,
    parse_certificates,
)
from certbotk8s.core.config.dns_providers import DnsProviderConfig, parse_dns_providers
from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import ChallengeType, KeyType
from certbotk8s.core.sources.names import (
    InvalidHostname,
    is_dns1123_label,
    is_dns1123_subdomain,
    normalize_host,
)

DEFAULT_CONTROLLER_NAMESPACE = "certbotk8s"
DEFAULT_ISTIO_GATEWAY_NAMESPACE = "istio-system"
DEFAULT_HTTP01_PORT = 8089
KNOWN_PROFILES = frozenset({"classic", "tlsserver", "shortlived"})
# The DNS section lives in config_dns; these names stay importable from here.
TSIG_ALGORITHMS = config_dns.TSIG_ALGORITHMS
DNS_PROVIDER_TYPES = config_dns.DNS_PROVIDER_TYPES
SecretKeyRef = config_dns.SecretKeyRef
PATH_TYPES = shape.PATH_TYPES
UNLIMITED = 10**9  # a rate limit set to 0 in the file
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
# RFC 2606 example domains: Let's Encrypt refuses them as account contacts at the first order.
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")

_HTTPS_URL = re.compile(r"^https://[^\s/?#@]+(?::\d+)?(?:/[^\s#]*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")


class ConfigError(CertbotK8sError, ValueError):
    """The configuration is invalid; `errors` holds one `path: message` line per problem."""

    def __init__(self, errors: list[str] | tuple[str, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class EabConfig:
    """External account binding: key id and HMAC key (base64url) from one Secret."""

    namespace: str
    name: str
    key_id_key: str
    hmac_key: str


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    directory: str
    email: str | None = None
    eab: EabConfig | None = None
    ca_bundle: str | None = None
    preferred_chain: str | None = None
    profiles: tuple[str, ...] | None = None  # None: not configured (the well-known ones)
    rate_limits: Limits = field(default_factory=Limits)
    default_profile: str | None = None  # asked for when a source names none
    namespaces: tuple[str, ...] | None = None  # None: sources of every namespace may use it

    def allows_profile(self, profile: str) -> bool:
        """Profiles a source may ask for: exactly those listed, else the well-known ones."""
        return profile in (KNOWN_PROFILES if self.profiles is None else self.profiles)

    def allows_namespace(self, namespace: str) -> bool:
        """Whether sources in `namespace` may use this issuer (its `namespaces` scope)."""
        return self.namespaces is None or namespace in self.namespaces


@dataclass(frozen=True)
class IstioConfig:
    gateway_namespace: str = DEFAULT_ISTIO_GATEWAY_NAMESPACE
    allowed_source_namespaces: tuple[str, ...] = ()
    gateway_namespaces: tuple[str, ...] = ()  # extra targets for the gateway-namespace override

    @property
    def override_namespaces(self) -> tuple[str, ...]:
        """Namespaces `certbotk8s.io/gateway-namespace` may name: the default and the listed."""
        return tuple(sorted({self.gateway_namespace, *self.gateway_namespaces}))


MAX_HOSTS_PER_CERTIFICATE = 100  # Let's Encrypt's limit on identifiers per order


@dataclass(frozen=True)
class TenantsConfig:
    """Who may ask for which host (see core.sources.ownership).

    `host_patterns` None: any namespace may ask for any host (no pattern check; the file says
    `allowAnyHost: true`, or leaves out both keys as before that key existed); a mapping: a
    namespace may ask only for hosts matching its patterns (a namespace not listed: none).
    First-claimant protection applies either way.
    `share_hosts` False: a host held by a certificate in one namespace is refused for others.
    `claim_grace`: how long a claim outlives its source (a source re-created within it keeps
    its hosts; after it, another namespace may have them).
    """

    host_patterns: Mapping[str, tuple[str, ...]] | None = None
    share_hosts: bool = False
    max_hosts_per_certificate: int = MAX_HOSTS_PER_CERTIFICATE
    claim_grace: timedelta = timedelta(hours=1)
    allowed_special_use_suffixes: tuple[str, ...] = ()  # e.g. ("internal",) for a private CA


@dataclass(frozen=True)
class Http01Config:
    """HTTP-01 solving.

    `listen_address`/`port`: where the controller's token listener binds. `solver_service` and
    `solver_service_port`: the Service in the controller namespace that temporary routes point
    at. `self_check_port`: where the self-check connects (80 in production, the CA's HTTP-01
    port in labs); `self_check_resolver` (`host:port`) resolves names for it (None: system).
    """

    path_type: str = "ImplementationSpecific"
    self_check: bool = True
    port: int = DEFAULT_HTTP01_PORT
    listen_address: str = "0.0.0.0"
    solver_service: str = "certbotk8s-solver"
    solver_service_port: int = 80
    self_check_port: int = 80
    self_check_resolver: str | None = None
    self_check_networks: tuple[str, ...] = ()  # CIDRs the self-check may connect to; (): any


class PropagationMode(enum.Enum):
    """Whom the DNS-01 propagation check asks: every authoritative nameserver of the zone
    (port `nameserverPort`, no recursion), or only the configured recursive resolvers."""

    AUTHORITATIVE = "authoritative"
    RECURSIVE = "recursive"


@dataclass(frozen=True)
class Dns01Config:
    """`recursive_nameservers` (`host:port`) are asked in RECURSIVE mode; () there: the
    system resolver's nameservers."""

    propagation_timeout: timedelta = timedelta(seconds=300)
    poll_interval: timedelta = timedelta(seconds=5)
    propagation_mode: PropagationMode = PropagationMode.AUTHORITATIVE
    recursive_nameservers: tuple[str, ...] = ()


MAX_ORDER_TIMEOUT = timedelta(minutes=10)  # the HTTP-01 token sweep (every 10 min) outlasts it


@dataclass(frozen=True)
class SolverConfig:
    """`order_timeout`: what an order may take besides the DNS propagation wait (the CA
    validating and finalizing); see core.renewal.waits."""

    http01: Http01Config = field(default_factory=Http01Config)
    dns01: Dns01Config = field(default_factory=Dns01Config)
    order_timeout: timedelta = timedelta(seconds=120)


@dataclass(frozen=True)
class RenewalConfig:
    """Defaults for sources that do not say: `renew_before` None means lifetime fractions."""

    renew_before: timedelta | None = None
    key_type: KeyType = KeyType.ECDSA_P256


@dataclass(frozen=True)
class Config:
    issuers: Mapping[str, IssuerConfig]
    default_issuer: str
    dns_providers: Mapping[str, DnsProviderConfig] = field(default_factory=dict)
    default_dns_provider: str | None = None
    controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE
    istio: IstioConfig = field(default_factory=IstioConfig)
    certificates: tuple[CertificateConfig, ...] = ()  # `certificates` + `defaultCertificate`
    solver: SolverConfig = field(default_factory=SolverConfig)
    renewal: RenewalConfig = field(default_factory=RenewalConfig)
    tenants: TenantsConfig = field(default_factory=TenantsConfig)
    warnings: tuple[str, ...] = ()  # `path: message` lines for things that work but look wrong

    @property
    def default_certificate(self) -> CertificateConfig | None:
        """The `defaultCertificate` entry (an alias for one entry of `certificates`)."""
        return next((c for c in self.certificates if c.name == DEFAULT_CERTIFICATE_NAME), None)


def load_config(text: str, default_namespace: str | None = None) -> Config:
    """Parse and validate a YAML configuration document.

    `default_namespace` is the controller namespace when the file sets none (the CLI passes the
    pod's own namespace, $POD_NAMESPACE), else `certbotk8s`.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([f"<file>: not valid YAML: {e}"]) from e
    return parse_config({} if data is None else data, default_namespace)


def parse_config(data: object, default_namespace: str | None = None) -> Config:
    """Validate a parsed configuration document (a mapping) into a Config."""
    return _Parser(default_namespace or DEFAULT_CONTROLLER_NAMESPACE).config(data)


def is_example_contact(email: str) -> bool:
    """An address at an RFC 2606 example domain (or below one)."""
    domain = email.rpartition("@")[2].lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in _EXAMPLE_DOMAINS)


class _Parser:
    """Walks the document, collecting `path: message` errors instead of stopping at the first."""

    def __init__(self, default_namespace: str) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.default_namespace = default_namespace

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    # -- primitives -------------------------------------------------------------------------

    def mapping(
        self, value: object, path: str, allowed: frozenset[str] | None
    ) -> dict[str, object]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.error(path, f"keys must be strings, got {key!r}")
                continue
            if allowed is not None and key not in allowed:
                known = ", ".join(sorted(allowed))
                self.error(_join(path, key), f"unknown field (known: {known})")
                continue
            result[key] = item
        return result

    def string(
        self, m: dict[str, object], key: str, path: str, *, required: bool = False
    ) -> str | None:
        value = m.get(key)
        if value is None:
            if required:
                self.error(_join(path, key), "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(_join(path, key), f"must be a non-empty string, got {value!r}")
            return None
        return value.strip()

    def boolean(self, m: dict[str, object], key: str, path: str, default: bool) -> bool:
        value = m.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(_join(path, key), f"must be true or false, got {value!r}")
            return default
        return value

    def port(self, m: dict[str, object], key: str, path: str) -> int | None:
        value = m.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.error(_join(path, key), f"must be a port number 1-65535, got {value!r}")
            return None
        return value

    def seconds(self, m: dict[str, object], key: str, path: str, default: timedelta) -> timedelta:
        value = m.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.error(_join(path, key), f"must be a positive number of seconds, got {value!r}")
            return default
        return timedelta(seconds=value)

    def string_list(self, m: dict[str, object], key: str, path: str) -> tuple[str, ...]:
        value = m.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(_join(path, key), f"must be a list, got {type(value).__name__}")
            return ()
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.error(f"{_join(path, key)}[{index}]", f"must be a string, got {item!r}")
            else:
                items.append(item)
        return tuple(items)

    def key_type(self, m: dict[str, object], key: str, path: str) -> KeyType | None:
        value = self.string(m, key, path)
        if value is None:
            return None
        try:
            return KeyType(value)
        except ValueError:
            known = ", ".join(k.value for k in KeyType)
            self.error(_join(path, key), f"unknown key type {value!r} (known: {known})")
            return None

    def challenge(self, m: dict[str, object], key: str, path: str) -> ChallengeType | None:
        value = self.string(m, key, path)
        if value is None:
            return None
        try:
            return ChallengeType(value)
        except ValueError:
            self.error(_join(path, key), f"must be http-01 or dns-01, got {value!r}")
            return None

    def secret_namespace(self, m: dict[str, object], path: str, default: str) -> str:
        namespace = self.string(m, "namespace", path)
        if namespace is None:
            return default
        if not is_dns1123_label(namespace):
            self.error(_join(path, "namespace"), f"{namespace!r} is not a valid namespace name")
        return namespace

    def secret_name(self, m: dict[str, object], path: str) -> str:
        name = self.string(m, "name", path, required=True) or ""
        if name and not is_dns1123_subdomain(name):
            self.error(_join(path, "name"), f"{name!r} is not a valid Secret name")
        return name

    # -- sections ---------------------------------------------------------------------------

    def config(self, data: object) -> Config:
        top = self.mapping(data, "<root>", shape.keys(shape.CONFIG))
        namespace = self.string(top, "controllerNamespace", "") or self.default_namespace
        if not is_dns1123_label(namespace):
            self.error("controllerNamespace", f"{namespace!r} is not a valid namespace name")

        issuers = self.issuers(top.get("issuers"), namespace)
        default_issuer = self.string(top, "defaultIssuer", "")
        if default_issuer is None:
            if len(issuers) == 1:
                default_issuer = next(iter(issuers))
            elif issuers:
                self.error("defaultIssuer", "is required when more than one issuer is configured")
        elif issuers and default_issuer not in issuers:
            self.error("defaultIssuer", f"names no configured issuer: {default_issuer!r}")

        providers = self.dns_providers(top.get("dnsProviders"), namespace)
        default_provider = self.string(top, "defaultDnsProvider", "")
        if default_provider is not None and default_provider not in providers:
            self.error(
                "defaultDnsProvider", f"names no configured DNS provider: {default_provider!r}"
            )

        istio = self.istio(top.get("istio"))
        solver = self.solver(top.get("solver"))
        renewal = self.renewal(top.get("renewal"))
        tenants = self.tenants(top.get("tenants"))
        certificates = parse_certificates(
            self, top.get("certificates"), top.get("defaultCertificate"), issuers,
            default_issuer or "", providers, default_provider)
        if self.errors:
            raise ConfigError(self.errors)
        assert default_issuer is not None  # issuers non-empty was checked above
        return Config(
            issuers=issuers,
            default_issuer=default_issuer,
            dns_providers=providers,
            default_dns_provider=default_provider,
            controller_namespace=namespace,
            istio=istio,
            certificates=certificates,
            solver=solver,
            renewal=renewal,
            tenants=tenants,
            warnings=tuple(self.warnings),
        )

    def issuers(self, value: object, namespace: str) -> dict[str, IssuerConfig]:
        if value is None:
            self.error("issuers", "at least one issuer is required")
            return {}
        entries = self.mapping(value, "issuers", None)
        if not entries and isinstance(value, dict):
            self.error("issuers", "at least one issuer is required")
        result: dict[str, IssuerConfig] = {}
        allowed = shape.keys(shape.ISSUER)
        for name, raw in entries.items():
            path = f"issuers.{name}"
            if not _NAME.match(name):
                self.error(path, "issuer names are lower-case letters, digits, '.', '-', '_'")
            m = self.mapping(raw, path, allowed)
            directory = self.string(m, "directory", path, required=True)
            if directory is not None and not _HTTPS_URL.match(directory):
                self.error(f"{path}.directory", f"must be an https URL, got {directory!r}")
            email = self.string(m, "email", path)
            if email is not None and not _EMAIL.match(email):
                self.error(f"{path}.email", f"not an email address: {email!r}")
            elif email is not None and is_example_contact(email):
                if directory == LETSENCRYPT_PRODUCTION:
                    self.error(f"{path}.email", f"Let's Encrypt refuses example-domain contacts "
                               f"such as {email!r}: set a mailbox you read, or remove the key")
                else:
                    self.warnings.append(f"{path}.email: {email!r} is an example address; "
                                         "CAs such as Let's Encrypt refuse it")
            eab = self.eab(m.get("eab"), f"{path}.eab", namespace)
            ca_bundle = self.string(m, "caBundle", path)
            if ca_bundle is not None and not ca_bundle.startswith("/"):
                self.error(f"{path}.caBundle", f"must be an absolute file path, got {ca_bundle!r}")
            profiles = self.string_list(m, "profiles", path) if "profiles" in m else None
            default_profile = self.string(m, "defaultProfile", path)
            offered = KNOWN_PROFILES if profiles is None else profiles
            if default_profile is not None and default_profile not in offered:
                self.error(f"{path}.defaultProfile",
                           f"{default_profile!r} is not among the issuer's profiles")
            result[name] = IssuerConfig(
                name=name,
                directory=directory or "",
                email=email,
                eab=eab,
                ca_bundle=ca_bundle,
                preferred_chain=self.string(m, "preferredChain", path),
                profiles=profiles,
                rate_limits=self.rate_limits(m.get("rateLimits"), f"{path}.rateLimits"),
                default_profile=default_profile,
                namespaces=self.namespace_scope(m, "namespaces", path),
            )
        return result

    def rate_limits(self, value: object, path: str) -> Limits:
        """The CA's limits the budget keeps to; Let's Encrypt's by default, 0 turns one off."""
        fields = {"certificatesPerDomain": "certs_per_domain",
                  "certificatesPerIdentifierSet": "certs_per_set",
                  "ordersPer3Hours": "orders_per_account",
                  "failedAuthorizationsPerHour": "failed_authz_per_identifier"}
        shares = {"namespaceOrderShare": "namespace_share_percent",
                  "namespaceDomainShare": "namespace_domain_share_percent"}
        m = self.mapping(value, path, shape.keys(shape.section(shape.ISSUER, "rateLimits")))
        numbers: dict[str, int] = {}
        for key, attribute in shares.items():
            share = m.get(key)
            if share is None:
                continue
            if isinstance(share, bool) or not isinstance(share, int) or not 1 <= share <= 100:
                self.error(_join(path, key), f"must be a percentage 1..100, got {share!r}")
            else:
                numbers[attribute] = share
        for key, attribute in fields.items():
            raw = m.get(key)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                self.error(_join(path, key), f"must be a whole number >= 0, got {raw!r}")
                continue
            numbers[attribute] = raw if raw > 0 else UNLIMITED
        defaults = Limits()
        return replace(defaults, **numbers)  # type: ignore[arg-type]

    def eab(self, value: object, path: str, namespace: str) -> EabConfig | None:
        if value is None:
            return None
        eab_shape = shape.section(shape.ISSUER, "eab")
        m = self.mapping(value, path, shape.keys(eab_shape))
        if "secretRef" not in m:
            self.error(f"{path}.secretRef", "is required (EAB keys are read from a Secret)")
            return None
        ref_path = f"{path}.secretRef"
        ref = self.mapping(m["secretRef"], ref_path,
                           shape.keys(shape.section(eab_shape, "secretRef")))
        return EabConfig(
            namespace=self.secret_namespace(ref, ref_path, namespace),
            name=self.secret_name(ref, ref_path),
            key_id_key=self.string(ref, "keyIdKey", ref_path, required=True) or "",
            hmac_key=self.string(ref, "hmacKey", ref_path, required=True) or "",
        )

    def dns_providers(self, value: object, namespace: str) -> dict[str, DnsProviderConfig]:
        return parse_dns_providers(self, value, namespace)

    def server(
        self, m: dict[str, object], key: str, path: str, *, required: bool = False, port: int = 53
    ) -> tuple[str, int]:
        """`host`, `host:port` or `[v6]:port`; ("", port) when absent."""
        server = self.string(m, key, path, required=required)
        if server is None:
            return "", port
        return self.hostport(server, f"{path}.{key}", port)

    def hostport(self, server: str, path: str, port: int = 53) -> tuple[str, int]:
        """`server` (`host`, `host:port`, `[v6]:port`) split; ("", port) when malformed."""
        match = re.match(r"^\[([0-9a-fA-F:.]+)\](?::(\d+))?$", server) or re.match(
            r"^([^:\s\[\]]+)(?::(\d+))?$", server
        )
        if match is None:
            self.error(path, f"must be host or host:port, got {server!r}")
            return "", port
        port = int(match.group(2)) if match.group(2) else port
        if not 1 <= port <= 65535:
            self.error(path, f"port out of range in {server!r}")
        return match.group(1), port

    def istio(self, value: object) -> IstioConfig:
        path = "istio"
        m = self.mapping(value, path, shape.keys(shape.ISTIO))
        gateway_ns = self.string(m, "gatewayNamespace", path) or DEFAULT_ISTIO_GATEWAY_NAMESPACE
        if not is_dns1123_label(gateway_ns):
            self.error(f"{path}.gatewayNamespace", f"{gateway_ns!r} is not a valid namespace name")
        return IstioConfig(
            gateway_namespace=gateway_ns,
            allowed_source_namespaces=self.namespaces(m, "allowedSourceNamespaces", path),
            gateway_namespaces=self.namespaces(m, "gatewayNamespaces", path),
        )

    def namespaces(self, m: dict[str, object], key: str, path: str) -> tuple[str, ...]:
        """A list of namespace names, sorted and unique."""
        names = self.string_list(m, key, path)
        for index, ns in enumerate(names):
            if not is_dns1123_label(ns):
                self.error(f"{path}.{key}[{index}]", f"{ns!r} is not a valid namespace name")
        return tuple(sorted(set(names)))

    def namespace_scope(self, m: dict[str, object], key: str,
                        path: str) -> tuple[str, ...] | None:
        """A scope of namespace names; None when the key is absent (every namespace)."""
        return self.namespaces(m, key, path) if key in m else None

    def networks(self, m: dict[str, object], key: str, path: str) -> tuple[str, ...]:
        """A list of CIDRs (`10.0.0.0/8`, `2001:db8::/32`), normalised."""
        result: list[str] = []
        for index, raw in enumerate(self.string_list(m, key, path)):
            try:
                result.append(str(ipaddress.ip_network(raw, strict=False)))
            except ValueError:
                self.error(f"{path}.{key}[{index}]", f"not a network like 10.0.0.0/8: {raw!r}")
        return tuple(result)

    def tenants(self, value: object) -> TenantsConfig:
        path = "tenants"
        m = self.mapping(value, path, shape.keys(shape.TENANTS))
        patterns: dict[str, tuple[str, ...]] | None = None
        allow_any = m.get("allowAnyHost")
        if allow_any is not None and not isinstance(allow_any, bool):
            self.error(f"{path}.allowAnyHost", f"must be true or false, got {allow_any!r}")
        elif allow_any and m.get("hostPatterns"):  # an empty `{}` beside it is no conflict
            self.error(f"{path}.allowAnyHost",
                       "true allows every host: remove hostPatterns, or set this to false")
        elif allow_any is False and m.get("hostPatterns") is None:
            patterns = {}  # said no to any host and listed none: nobody may ask for a host
        if "hostPatterns" in m and not allow_any:
            patterns = {}
            table = self.mapping(m["hostPatterns"], f"{path}.hostPatterns", None)
            for namespace in table:
                ns_path = f"{path}.hostPatterns.{namespace}"
                if not is_dns1123_label(namespace):
                    self.error(ns_path, f"{namespace!r} is not a valid namespace name")
                items: list[str] = []
                raw_patterns = self.string_list(table, namespace, f"{path}.hostPatterns")
                for index, raw in enumerate(raw_patterns):
                    try:
                        items.append(normalize_host(raw))
                    except InvalidHostname as e:
                        self.error(f"{ns_path}[{index}]", str(e))
                patterns[namespace] = tuple(sorted(set(items)))
        limit = m.get("maxHostsPerCertificate", MAX_HOSTS_PER_CERTIFICATE)
        if (isinstance(limit, bool) or not isinstance(limit, int)
                or not 1 <= limit <= MAX_HOSTS_PER_CERTIFICATE):
            self.error(f"{path}.maxHostsPerCertificate",
                       f"must be a whole number 1-{MAX_HOSTS_PER_CERTIFICATE}, got {limit!r}")
            limit = MAX_HOSTS_PER_CERTIFICATE
        return TenantsConfig(
            host_patterns=patterns,
            share_hosts=self.boolean(m, "shareHosts", path, False),
            max_hosts_per_certificate=limit,
            claim_grace=self.seconds(m, "claimGraceSeconds", path, timedelta(hours=1)),
            allowed_special_use_suffixes=self.suffixes(m, "allowedSpecialUseSuffixes", path),
        )

    def suffixes(self, m: dict[str, object], key: str, path: str) -> tuple[str, ...]:
        """DNS suffixes (`internal`, `svc.cluster.local`), lower-case, sorted and unique."""
        names = [s.strip().lower().strip(".") for s in self.string_list(m, key, path)]
        for index, name in enumerate(names):
            if not is_dns1123_subdomain(name):
                self.error(f"{path}.{key}[{index}]", f"{name!r} is not a DNS suffix")
        return tuple(sorted(set(names)))

    def solver(self, value: object) -> SolverConfig:
        m = self.mapping(value, "solver", shape.keys(shape.SOLVER))
        h = self.mapping(m.get("http01"), "solver.http01", shape.keys(shape.HTTP01))
        path_type = self.string(h, "pathType", "solver.http01") or "ImplementationSpecific"
        if path_type not in PATH_TYPES:
            known = ", ".join(sorted(PATH_TYPES))
            self.error("solver.http01.pathType", f"must be one of {known}, got {path_type!r}")
        service = self.string(h, "solverService", "solver.http01") or "certbotk8s-solver"
        if not is_dns1123_label(service):
            self.error("solver.http01.solverService", f"{service!r} is not a valid Service name")
        resolver_host, resolver_port = self.server(h, "selfCheckResolver", "solver.http01")
        http01 = Http01Config(
            path_type=path_type,
            self_check=self.boolean(h, "selfCheck", "solver.http01", True),
            port=self.port(h, "port", "solver.http01") or DEFAULT_HTTP01_PORT,
            listen_address=self.string(h, "listenAddress", "solver.http01") or "0.0.0.0",
            solver_service=service,
            solver_service_port=self.port(h, "solverServicePort", "solver.http01") or 80,
            self_check_port=self.port(h, "selfCheckPort", "solver.http01") or 80,
            self_check_resolver=_hostport(resolver_host, resolver_port),
            self_check_networks=self.networks(h, "selfCheckNetworks", "solver.http01"),
        )
        order_timeout = self.seconds(m, "orderTimeout", "solver", SolverConfig().order_timeout)
        if order_timeout > MAX_ORDER_TIMEOUT:
            self.error("solver.orderTimeout",
                       f"must be at most {MAX_ORDER_TIMEOUT.total_seconds():g} seconds")
        return SolverConfig(http01=http01, dns01=self.dns01(m.get("dns01")),
                            order_timeout=order_timeout)

    def dns01(self, value: object) -> Dns01Config:
        path = "solver.dns01"
        d = self.mapping(value, path, shape.keys(shape.DNS01))
        defaults = Dns01Config()
        p_path = f"{path}.propagation"
        p = self.mapping(d.get("propagation"), p_path,
                         shape.keys(shape.section(shape.DNS01, "propagation")))
        mode_text = self.string(p, "mode", p_path) or defaults.propagation_mode.value
        try:
            mode = PropagationMode(mode_text)
        except ValueError:
            known = ", ".join(m.value for m in PropagationMode)
            self.error(f"{p_path}.mode", f"must be one of {known}, got {mode_text!r}")
            mode = defaults.propagation_mode
        nameservers: list[str] = []
        for index, raw in enumerate(self.string_list(p, "nameservers", p_path)):
            host, port = self.hostport(raw.strip(), f"{p_path}.nameservers[{index}]")
            if host:
                nameservers.append(_hostport(host, port) or "")
        if nameservers and mode is not PropagationMode.RECURSIVE:
            self.error(f"{p_path}.nameservers", "is only used with mode: recursive")
        return Dns01Config(
            propagation_timeout=self.seconds(
                d, "propagationTimeout", path, defaults.propagation_timeout),
            poll_interval=self.seconds(d, "pollInterval", path, defaults.poll_interval),
            propagation_mode=mode,
            recursive_nameservers=tuple(nameservers),
        )

    def renewal(self, value: object) -> RenewalConfig:
        m = self.mapping(value, "renewal", shape.keys(shape.RENEWAL))
        renew_before: timedelta | None = None
        text = self.string(m, "renewBefore", "renewal")
        if text is not None:
            try:
                renew_before = parse_duration(text)
            except ValueError as e:
                self.error("renewal.renewBefore", str(e))
        key_type = self.key_type(m, "keyType", "renewal") or KeyType.ECDSA_P256
        return RenewalConfig(renew_before=renew_before, key_type=key_type)


def _hostport(host: str, port: int) -> str | None:
    if not host:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and path != "<root>" else key
