"""The smaller sections of the configuration: istio, tenants, solver, renewal, migration."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic.dataclasses import dataclass

from certbotk8s.core.config.choices import KEY_TYPES, parse_key_type
from certbotk8s.core.config.fields import (
    SECTION,
    Duration,
    Endpoint,
    Endpoints,
    Flag,
    HostPatterns,
    Namespace,
    Namespaces,
    Networks,
    Port,
    Seconds,
    Section,
    Suffixes,
    Text,
    Timeout,
    enum_schema,
    fail_at,
    left_out,
    one_of,
    text,
    whole,
)
from certbotk8s.core.model import KeyType
from certbotk8s.core.sources.names import is_dns1123_label

DEFAULT_ISTIO_GATEWAY_NAMESPACE = "istio-system"
DEFAULT_HTTP01_PORT = 8089
MAX_HOSTS_PER_CERTIFICATE = 100  # Let's Encrypt's limit on identifiers per order
MAX_ORDER_TIMEOUT = timedelta(minutes=10)  # the HTTP-01 token sweep (every 10 min) outlasts it
PATH_TYPES = frozenset({"ImplementationSpecific", "Prefix", "Exact"})
ROUTE_NAMESPACES = ("source", "controller")  # solver.http01.routeNamespace

def _key_type(value: object) -> KeyType:
    return value if isinstance(value, KeyType) else parse_key_type(text(value), echo=True)


KeyTypeField = Annotated[KeyType, BeforeValidator(_key_type), enum_schema(*KEY_TYPES)]


def _service(value: str) -> str:
    if not is_dns1123_label(value):
        raise ValueError(f"{value!r} is not a valid Service name")
    return value


@dataclass(frozen=True, config=SECTION)
class IstioConfig(Section):
    gateway_namespace: Namespace = DEFAULT_ISTIO_GATEWAY_NAMESPACE
    allowed_source_namespaces: Namespaces = ()
    gateway_namespaces: Namespaces = ()  # extra targets for the gateway-namespace override

    @property
    def override_namespaces(self) -> tuple[str, ...]:
        """Namespaces `certbotk8s.io/gateway-namespace` may name: the default and the listed."""
        return tuple(sorted({self.gateway_namespace, *self.gateway_namespaces}))


@dataclass(frozen=True, config=SECTION)
class TenantsConfig(Section):
    """Who may ask for which host (see core.sources.ownership).

    `host_patterns` None: any namespace may ask for any host (no pattern check; the file says
    `allowAnyHost: true`, or leaves out both keys as before that key existed); a mapping: a
    namespace may ask only for hosts matching its patterns (a namespace not listed: none).
    First-claimant protection applies either way.
    `share_hosts` False: a host held by a certificate in one namespace is refused for others.
    `claim_grace` (file: `claimGraceSeconds`): how long a claim outlives its source (a source
    re-created within it keeps its hosts; after it, another namespace may have them).
    """

    host_patterns: Annotated[Mapping[Namespace, HostPatterns] | None, BeforeValidator(
        lambda v: {} if v is None else v)] = None  # written without a value: none listed
    allow_any_host: Flag | None = None
    share_hosts: Flag = False
    max_hosts_per_certificate: Annotated[int, whole(
        1, MAX_HOSTS_PER_CERTIFICATE, f"must be a whole number 1-{MAX_HOSTS_PER_CERTIFICATE}")
    ] = MAX_HOSTS_PER_CERTIFICATE
    claim_grace: Seconds = Field(default=timedelta(hours=1), alias="claimGraceSeconds")
    allowed_special_use_suffixes: Suffixes = ()  # e.g. ("internal",) for a private CA

    @model_validator(mode="after")
    def _one_host_policy(self) -> TenantsConfig:
        if self.allow_any_host and self.host_patterns:  # an empty `{}` beside it: no conflict
            fail_at(("allowAnyHost",),
                    "true allows every host: remove hostPatterns, or set this to false", True)
        if self.allow_any_host:
            object.__setattr__(self, "host_patterns", None)
        elif self.allow_any_host is False and self.host_patterns is None:
            object.__setattr__(self, "host_patterns", {})  # said no to any host, listed none
        return self


@dataclass(frozen=True, config=SECTION)
class Http01Config(Section):
    """HTTP-01 solving.

    `listen_address`/`port`: where the controller's token listener binds. `solver_service` and
    `solver_service_port`: the Service in the controller namespace that temporary routes point
    at. `self_check_port`: where the self-check connects (80 in production, the CA's HTTP-01
    port in labs); `self_check_resolver` (`host:port`) resolves names for it (None: system).
    `route_namespace`: where temporary routes go, "source" (the source's namespace) or
    "controller" (ours); adapters/http01/routing.py says what each needs from the proxy.
    """

    path_type: Annotated[str, one_of(*sorted(PATH_TYPES)),
                         enum_schema(*sorted(PATH_TYPES))] = "ImplementationSpecific"
    self_check: Flag = True
    port: Port = DEFAULT_HTTP01_PORT
    listen_address: Text = "0.0.0.0"
    solver_service: Annotated[Text, AfterValidator(_service)] = "certbotk8s-solver"
    solver_service_port: Port = 80
    self_check_port: Port = 80
    self_check_resolver: Endpoint | None = None
    self_check_networks: Networks = ()  # CIDRs the self-check may connect to; (): any
    route_namespace: Annotated[str, one_of(*ROUTE_NAMESPACES),
                               enum_schema(*ROUTE_NAMESPACES)] = "source"


class PropagationMode(enum.Enum):
    """Whom the DNS-01 propagation check asks: every authoritative nameserver of the zone
    (port `nameserverPort`, no recursion), or only the configured recursive resolvers."""

    AUTHORITATIVE = "authoritative"
    RECURSIVE = "recursive"


_MODES = tuple(m.value for m in PropagationMode)


@dataclass(frozen=True, config=SECTION)
class Propagation(Section):
    """`nameservers` (`host:port`) are asked in recursive mode; none there: the system
    resolver's nameservers."""

    mode: Annotated[PropagationMode, one_of(*_MODES),
                    enum_schema(*_MODES)] = PropagationMode.AUTHORITATIVE
    nameservers: Endpoints = ()

    @model_validator(mode="after")
    def _recursive_only(self) -> Propagation:
        if self.nameservers and self.mode is not PropagationMode.RECURSIVE:
            fail_at(("nameservers",), "is only used with mode: recursive", self.nameservers)
        return self


@dataclass(frozen=True, config=SECTION)
class Dns01Config(Section):
    propagation_timeout: Seconds = timedelta(seconds=300)
    poll_interval: Seconds = timedelta(seconds=5)
    propagation: Propagation = left_out()

    @property
    def propagation_mode(self) -> PropagationMode:
        return self.propagation.mode

    @property
    def recursive_nameservers(self) -> tuple[str, ...]:
        return self.propagation.nameservers


@dataclass(frozen=True, config=SECTION)
class SolverConfig(Section):
    """`order_timeout`: what an order may take besides the DNS propagation wait (the CA
    validating and finalizing), at most MAX_ORDER_TIMEOUT; see core.renewal.waits."""

    http01: Http01Config = left_out()
    dns01: Dns01Config = left_out()
    order_timeout: Timeout = timedelta(seconds=120)


@dataclass(frozen=True, config=SECTION)
class RenewalConfig(Section):
    """Defaults for sources that do not say: `renew_before` None means lifetime fractions."""

    renew_before: Duration | None = None
    key_type: KeyTypeField = KeyType.ECDSA_P256


@dataclass(frozen=True, config=SECTION)
class MigrationConfig(Section):
    """Moving from cert-manager: `cert_manager_issuers` maps the names in its
    `cert-manager.io/issuer` / `cluster-issuer` annotations to configured issuers. Empty (the
    default): no `cert-manager.io/*` annotation is read and no cert-manager Secret adopted."""

    cert_manager_issuers: Mapping[str, Text] = dataclasses.field(default_factory=dict,
                                                                 hash=False)

    @property
    def from_cert_manager(self) -> bool:
        return bool(self.cert_manager_issuers)
