"""The DNS-01 provider registry: one builder per `type`, and the solver built around it.

Every builder gets the provider's config and a `read_secret` callable (Secret key -> text); it
never reads the process environment (a lexicon provider configured `credentials: ambient` hands
its SDK the process's own cloud identity: that choice is the provider's, see lexicon.py).
Every solver shares `DnsLookup` (propagation check).
"""

from __future__ import annotations

from collections.abc import Callable

from certbotk8s.adapters.dns.command import ExecProvider
from certbotk8s.adapters.dns.lexicon import LexiconProvider
from certbotk8s.adapters.dns.propagation import (
    DnsLookup,
    PropagationSettings,
    system_nameservers,
)
from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.dns.webhook import WebhookProvider
from certbotk8s.core.config.dns_providers import (
    DnsProviderConfig,
    ExecConfig,
    LexiconConfig,
    Rfc2136Config,
    SecretKeyRef,
    WebhookConfig,
)
from certbotk8s.core.config.settings import Dns01Config, PropagationMode
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.ports import DnsRecordProvider
from certbotk8s.core.renewal.waits import CappedWait

SecretReader = Callable[[SecretKeyRef], str]
Builder = Callable[[DnsProviderConfig, SecretReader], DnsRecordProvider]


def _rfc2136(config: DnsProviderConfig, read: SecretReader) -> DnsRecordProvider:
    s = config.settings
    assert isinstance(s, Rfc2136Config)
    return Rfc2136Provider(Rfc2136Settings(
        server=f"{s.server_host}:{s.server_port}", tsig_name=s.tsig_key_name,
        tsig_secret=read(s.tsig_secret), tsig_algorithm=s.tsig_algorithm, ttl=config.ttl,
        timeout=s.timeout.total_seconds()))


def _lexicon(config: DnsProviderConfig, read: SecretReader) -> DnsRecordProvider:
    s = config.settings
    assert isinstance(s, LexiconConfig)
    return LexiconProvider(s.provider, dict(s.options),
                           {option: read(ref) for option, ref in s.credentials}, config.ttl,
                           ambient=s.ambient)


def _webhook(config: DnsProviderConfig, read: SecretReader) -> DnsRecordProvider:
    s = config.settings
    assert isinstance(s, WebhookConfig)
    return WebhookProvider(s.url, read(s.token) if s.token is not None else None,
                           s.timeout.total_seconds(), s.retries)


def _exec(config: DnsProviderConfig, read: SecretReader) -> DnsRecordProvider:
    s = config.settings
    assert isinstance(s, ExecConfig)
    return ExecProvider(s.command, s.timeout.total_seconds())


REGISTRY: dict[str, Builder] = {
    "rfc2136": _rfc2136,
    "lexicon": _lexicon,
    "webhook": _webhook,
    "exec": _exec,
}


def build_solver(config: DnsProviderConfig, read: SecretReader, dns01: Dns01Config,
                 keep_going: Callable[[], bool] | None = None,
                 wait: CappedWait | None = None) -> DnsSolver:
    """The DNS-01 solver for one configured provider (`keep_going`: see DnsSolver; `wait`: the
    propagation wait capped for this order, core.renewal.waits; None: as configured)."""
    builder = REGISTRY.get(config.type)
    if builder is None or config.settings is None:
        raise DnsSolverError(f"DNS provider {config.name}: unknown type {config.type!r}")
    recursive: tuple[str, ...] = ()
    if dns01.propagation_mode is PropagationMode.RECURSIVE:
        recursive = dns01.recursive_nameservers or system_nameservers()
    lookup = DnsLookup(PropagationSettings(
        resolver=config.resolver,
        nameserver_port=config.nameserver_port or 53,
        recursive_nameservers=recursive,
        timeout=(wait.limit if wait is not None else dns01.propagation_timeout).total_seconds(),
        timeout_note=wait.why if wait is not None else "",
        poll_cap=max(dns01.poll_interval.total_seconds(), 0.05),
    ))
    return DnsSolver(builder(config, read), lookup, name=config.name,
                     follow_cname=config.follow_cname, zones=config.zones,
                     keep_going=keep_going)
