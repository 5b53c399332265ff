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
               selfCheckPort: 80, routeNamespace: source}
               # selfCheckResolver: 127.0.0.1:5353, selfCheckNetworks: []
      dns01: {propagationTimeout: 300, pollInterval: 5}
      #        propagation: {mode: recursive, nameservers: ["10.0.0.10:53"]}
      orderTimeout: 120  # besides the propagation wait (core.renewal.waits)
    renewal: {renewBefore: 720h, keyType: ecdsa-p256}
    migration:  # read cert-manager's Ingress annotations and adopt its Secrets (docs/migrating.md)
      certManagerIssuers: {letsencrypt-prod: letsencrypt}  # cert-manager issuer name -> ours
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, ValidationInfo
from pydantic import field_validator as check
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from certbotk8s.core.config.certificates import (
    DEFAULT_CERTIFICATE_NAME,
    CertificateConfig,
    DefaultCertificate,
    Defaults,
    problem_lines,
    resolve,
)
from certbotk8s.core.config.dns_providers import (
    DNS_PROVIDER_TYPES,
    TSIG_ALGORITHMS,
    DnsProviderConfig,
    SecretKeyRef,
)
from certbotk8s.core.config.error_lines import error_lines
from certbotk8s.core.config.fields import SECTION, Namespace, Section, Text, left_out, text, warn
from certbotk8s.core.config.issuers import (
    KNOWN_PROFILES,
    LETSENCRYPT_PRODUCTION,
    UNLIMITED,
    EabConfig,
    IssuerConfig,
    is_example_contact,
)
from certbotk8s.core.config.sections import (
    DEFAULT_HTTP01_PORT,
    DEFAULT_ISTIO_GATEWAY_NAMESPACE,
    MAX_HOSTS_PER_CERTIFICATE,
    MAX_ORDER_TIMEOUT,
    PATH_TYPES,
    ROUTE_NAMESPACES,
    Dns01Config,
    Http01Config,
    IstioConfig,
    MigrationConfig,
    PropagationMode,
    RenewalConfig,
    SolverConfig,
    TenantsConfig,
)
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.sources.names import is_dns1123_label

# Names other modules import from here (the sections live in their own modules).
__all__ = [
    "DEFAULT_CONTROLLER_NAMESPACE", "DEFAULT_HTTP01_PORT", "DEFAULT_ISTIO_GATEWAY_NAMESPACE",
    "DNS_PROVIDER_TYPES", "KNOWN_PROFILES", "LETSENCRYPT_PRODUCTION",
    "MAX_HOSTS_PER_CERTIFICATE", "MAX_ORDER_TIMEOUT", "PATH_TYPES", "ROUTE_NAMESPACES",
    "TSIG_ALGORITHMS", "UNLIMITED", "Config", "ConfigError", "Dns01Config", "EabConfig",
    "Http01Config", "IssuerConfig", "IstioConfig", "MigrationConfig", "PropagationMode",
    "RenewalConfig", "SecretKeyRef", "SolverConfig", "TenantsConfig", "is_example_contact",
    "load_config", "parse_config",
]

DEFAULT_CONTROLLER_NAMESPACE = "certbotk8s"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")


class ConfigError(CertbotK8sError, ValueError):
    """The configuration is invalid; `errors` holds one `path: message` line per problem."""

    def __init__(self, errors: list[str] | tuple[str, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


def _entry_name(what: str) -> AfterValidator:
    def check_name(name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{what} names are lower-case letters, digits, '.', '-', '_'")
        return name

    return AfterValidator(check_name)


def _named(entries: Mapping[str, Any]) -> Mapping[str, Any]:
    """Each entry knows its key (`IssuerConfig.name`, `DnsProviderConfig.name`)."""
    for name, entry in entries.items():
        object.__setattr__(entry, "name", name)
    return entries


def _some_issuer(issuers: Mapping[str, IssuerConfig]) -> Mapping[str, IssuerConfig]:
    if not issuers:
        raise ValueError("at least one issuer is required")
    return issuers


@dataclass(frozen=True, config=SECTION)  # not kw_only: that changes the order of checks
class Config(Section):
    """The whole file. Fields are declared in the order they are checked: a field's check may
    use those above it (`info.data`), when they are valid."""

    controller_namespace: Namespace = DEFAULT_CONTROLLER_NAMESPACE
    issuers: Annotated[Mapping[Annotated[str, _entry_name("issuer")], IssuerConfig],
                       AfterValidator(_some_issuer), AfterValidator(_named)] = Field(
        default_factory=dict, validate_default=True)
    default_issuer: str = Field(default=None, validate_default=True)  # None: the only issuer
    dns_providers: Annotated[Mapping[Annotated[str, _entry_name("provider")], DnsProviderConfig],
                             AfterValidator(_named)] = Field(default_factory=dict)
    default_dns_provider: Text | None = None
    istio: IstioConfig = left_out()
    solver: SolverConfig = left_out()
    renewal: RenewalConfig = left_out()
    tenants: TenantsConfig = left_out()
    migration: MigrationConfig = left_out()
    alias_entry: DefaultCertificate | None = Field(default=None, alias="defaultCertificate")
    listed: tuple[CertificateConfig, ...] = Field(default=(), alias="certificates")
    # `path: message` lines for things that work but look wrong (set by parse_config)
    warnings: SkipJsonSchema[tuple[str, ...]] = Field(default=(), init=False)

    @check("issuers")
    @classmethod
    def _example_contacts(cls, issuers: Mapping[str, IssuerConfig],
                          info: ValidationInfo) -> Mapping[str, IssuerConfig]:
        for name, issuer in issuers.items():
            if issuer.email is not None and is_example_contact(issuer.email):
                warn(info, f"issuers.{name}.email: {issuer.email!r} is an example address; "
                           "CAs such as Let's Encrypt refuse it")
        return issuers

    @check("default_issuer", mode="before")
    @classmethod
    def _default_issuer(cls, value: Any, info: ValidationInfo) -> Any:
        issuers = info.data.get("issuers")
        if value is None:
            if issuers is not None and len(issuers) > 1:
                raise ValueError("is required when more than one issuer is configured")
            return next(iter(issuers)) if issuers else ""
        value = text(value)
        if issuers is not None and value not in issuers:
            raise ValueError(f"names no configured issuer: {value!r}")
        return value

    @check("default_dns_provider")
    @classmethod
    def _default_dns_provider(cls, value: str | None, info: ValidationInfo) -> str | None:
        providers = info.data.get("dns_providers")
        if value is not None and providers is not None and value not in providers:
            raise ValueError(f"names no configured DNS provider: {value!r}")
        return value

    @check("migration")
    @classmethod
    def _known_issuers(cls, value: MigrationConfig, info: ValidationInfo) -> MigrationConfig:
        issuers = info.data.get("issuers")
        if issuers is None:
            return value
        known = ", ".join(sorted(issuers))
        problems = [(("certManagerIssuers", name), f"names no configured issuer: {target!r} "
                     f"(configured: {known})")
                    for name, target in value.cert_manager_issuers.items() if target not in issuers]
        if problems:
            raise ValidationError.from_exception_data("config", problem_lines(problems))
        return value

    @check("alias_entry")
    @classmethod
    def _resolve_alias(cls, entry: DefaultCertificate | None,
                       info: ValidationInfo) -> DefaultCertificate | None:
        defaults = _defaults(info)
        if entry is None or defaults is None:
            return entry
        resolved, problems = resolve(entry, DEFAULT_CERTIFICATE_NAME, defaults)
        if problems:
            raise ValidationError.from_exception_data(
                "config", problem_lines([((key,), message) for key, message in problems]))
        return resolved

    @check("listed")
    @classmethod
    def _resolve_entries(cls, entries: tuple[CertificateConfig, ...],
                         info: ValidationInfo) -> tuple[CertificateConfig, ...]:
        defaults = _defaults(info)
        if defaults is None:
            return entries
        problems: list[tuple[tuple[str | int, ...], str]] = []
        resolved: list[CertificateConfig] = []
        owner: dict[object, str] = {}
        alias = info.data.get("alias_entry")
        if alias is not None:
            owner[alias.secret] = DEFAULT_CERTIFICATE_NAME
        for index, entry in enumerate(entries):
            if entry.name in {e.name for e in entries[:index]}:
                problems.append(((index, "name"), f"{entry.name!r} names another entry too"))
            done, found = resolve(entry, entry.name, defaults)
            problems += [((index, key), message) for key, message in found]
            if entry.secret in owner:
                problems.append(((index, "secret"), f"{entry.secret} is already the Secret of "
                                                    f"{owner[entry.secret]}"))
            owner.setdefault(entry.secret, f"certificates.{entry.name}")
            resolved.append(done)
        if problems:
            raise ValidationError.from_exception_data("config", problem_lines(problems))
        return tuple(resolved)

    @property
    def certificates(self) -> tuple[CertificateConfig, ...]:
        """`certificates` with the `defaultCertificate` alias first."""
        alias = self.alias_entry
        return (*([alias] if isinstance(alias, CertificateConfig) else []), *self.listed)

    @property
    def default_certificate(self) -> CertificateConfig | None:
        """The `defaultCertificate` entry (an alias for one entry of `certificates`)."""
        return next((c for c in self.certificates if c.name == DEFAULT_CERTIFICATE_NAME), None)


def _defaults(info: ValidationInfo) -> Defaults | None:
    """What certificate entries leave out; None while issuers or providers are invalid."""
    data = info.data
    if not {"issuers", "default_issuer", "dns_providers", "default_dns_provider"} <= set(data):
        return None
    return Defaults(data["issuers"], data["default_issuer"], data["dns_providers"],
                    data.get("default_dns_provider"))


_CONFIG: TypeAdapter[Config] | None = None


def _adapter() -> TypeAdapter[Config]:
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = TypeAdapter(Config)
    return _CONFIG


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
    """Validate a parsed configuration document (a mapping) into a Config; a ConfigError lists
    every problem found, one `path: message` line each."""
    if not isinstance(data, dict):
        raise ConfigError([f"<root>: must be a mapping, got {type(data).__name__}"])
    document = dict(data)
    if document.get("controllerNamespace") is None:
        document["controllerNamespace"] = default_namespace or DEFAULT_CONTROLLER_NAMESPACE
    namespace = document["controllerNamespace"]
    if not isinstance(namespace, str) or not is_dns1123_label(namespace.strip()):
        namespace = DEFAULT_CONTROLLER_NAMESPACE  # its own error line says what is wrong
    context: dict[str, Any] = {"namespace": namespace.strip(), "warnings": []}
    try:
        config = _adapter().validate_python(document, context=context, by_alias=True,
                                            by_name=False)
    except ValidationError as e:
        raise ConfigError(error_lines(e, document, Config)) from None
    object.__setattr__(config, "warnings", tuple(context["warnings"]))
    return config

