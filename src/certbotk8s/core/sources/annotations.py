"""Opt-in and per-source options from annotations, validated against the configuration.

Opt-in: `certbotk8s.io/enabled: "true"` or `kubernetes.io/tls-acme: "true"`; an explicit
`certbotk8s.io/enabled: "false"` wins over `tls-acme` (opt out while another tool still reads
`tls-acme`). Every `certbotk8s.io/*` key is validated, unknown ones included (typo protection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from certbotk8s.core.config.choices import parse_challenge, parse_key_type
from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import CertificateSpec, ChallengeType, KeyType, SourceKind
from certbotk8s.core.sources import cert_manager
from certbotk8s.core.sources.names import is_dns1123_label
from certbotk8s.core.sources.text import ECHO_LIMIT, quote

MAX_VALUE = 256  # characters in a certbotk8s.io/* value; longer ones are refused, not parsed

PREFIX = "certbotk8s.io/"
ENABLED = "certbotk8s.io/enabled"
TLS_ACME = "kubernetes.io/tls-acme"
ISSUER = "certbotk8s.io/issuer"
CHALLENGE = "certbotk8s.io/challenge"
DNS_PROVIDER = "certbotk8s.io/dns-provider"
KEY_TYPE = "certbotk8s.io/key-type"
PROFILE = "certbotk8s.io/profile"
RENEW_BEFORE = "certbotk8s.io/renew-before"
GATEWAY_NAMESPACE = "certbotk8s.io/gateway-namespace"
INGRESS_CLASS = "kubernetes.io/ingress.class"

# Refusal reasons besides InvalidAnnotation: a valid value the source's namespace may not use
INVALID_ANNOTATION = "InvalidAnnotation"
ISSUER_NOT_ALLOWED = "IssuerNotAllowed"
PROFILE_NOT_ALLOWED = "ProfileNotAllowed"

SOURCE_ANNOTATIONS = frozenset(
    {ENABLED, ISSUER, CHALLENGE, DNS_PROVIDER, KEY_TYPE, PROFILE, RENEW_BEFORE, GATEWAY_NAMESPACE}
)


@dataclass(frozen=True)
class AnnotationError:
    """One bad annotation: its key, its value, what is wrong and the Event reason to report."""

    key: str
    value: str
    message: str
    reason: str = INVALID_ANNOTATION

    def __str__(self) -> str:
        return f"annotation {self.key}={quote(self.value)}: {self.message}"


@dataclass(frozen=True)
class SourceOptions:
    """A source's options with the config defaults filled in."""

    issuer: str
    challenge: ChallengeType
    dns_provider: str | None
    key_type: KeyType
    profile: str | None
    renew_before: timedelta | None
    gateway_namespace: str | None = None
    # Notices that refuse nothing (cert-manager annotations that are not honoured).
    notices: tuple[str, ...] = ()

    def spec(self, hosts: tuple[str, ...]) -> CertificateSpec:
        return CertificateSpec(
            hosts=hosts,
            issuer=self.issuer,
            challenge=self.challenge,
            dns_provider=self.dns_provider,
            key_type=self.key_type,
            profile=self.profile,
            renew_before=self.renew_before,
        )


def echoed(value: str) -> str:
    """What of a value a refusal quotes: an over-long one as its start only, the same however
    long it was (informers keep values cut one past MAX_VALUE: the message must not change)."""
    return value[:ECHO_LIMIT] + "..." if len(value) > MAX_VALUE else value


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def is_opted_in(annotations: Mapping[str, str] | None, config: Config | None = None) -> bool:
    """Whether the source asks for certificates (see the module docstring for the rule; with
    `config` given, cert-manager's issuer annotations too when `migration` maps them)."""
    annotations = annotations or {}
    enabled = annotations.get(ENABLED)
    if enabled is not None and enabled.strip().lower() == "false":
        return False
    if config is not None and cert_manager.opts_in(annotations, config):
        return True
    return _is_true(enabled) or _is_true(annotations.get(TLS_ACME))


def parse_source_options(
    annotations: Mapping[str, str] | None,
    config: Config,
    kind: SourceKind,
    namespace: str | None = None,
) -> tuple[SourceOptions | None, tuple[AnnotationError, ...]]:
    """Validate the `certbotk8s.io/*` annotations of a source of `kind`.

    Returns (options, ()) when all are valid, else (None, errors) with one error per bad
    annotation. Does not check opt-in (see `is_opted_in`), except that a value of
    `certbotk8s.io/enabled` other than true/false is an error.
    """
    annotations = annotations or {}
    errors: list[AnnotationError] = []

    def bad(key: str, message: str, reason: str = INVALID_ANNOTATION) -> None:
        errors.append(AnnotationError(key, echoed(annotations.get(key, "")), message, reason))

    for key in sorted(annotations):
        if key.startswith(PREFIX) and key not in SOURCE_ANNOTATIONS:
            known = ", ".join(sorted(SOURCE_ANNOTATIONS))
            bad(key, f"unknown annotation (known: {known})")
    too_long = sorted(k for k in SOURCE_ANNOTATIONS if len(annotations.get(k, "")) > MAX_VALUE)
    for key in too_long:
        bad(key, f"longer than {MAX_VALUE} characters")
    if too_long:
        return None, tuple(errors)

    enabled = annotations.get(ENABLED)
    if enabled is not None and enabled.strip().lower() not in ("true", "false"):
        bad(ENABLED, 'must be "true" or "false"')

    # cert-manager's annotations (config `migration`); ours win wherever both are set
    theirs = cert_manager.translate(annotations, config)
    for problem in theirs.problems:
        bad(problem.key, problem.message, problem.reason or INVALID_ANNOTATION)

    issuer = theirs.issuer if theirs.issuer is not None else config.default_issuer
    if ISSUER in annotations:
        value = annotations[ISSUER].strip()
        if value in config.issuers:
            issuer = value
        else:
            known = ", ".join(sorted(config.issuers))
            bad(ISSUER, f"no such issuer (configured: {known})")
    scoped = config.issuers.get(issuer)
    if scoped is not None and namespace is not None and not scoped.allows_namespace(namespace):
        # the issuer's `namespaces` scope (an internal CA, EAB paid for by one team)
        named = ISSUER in annotations or theirs.issuer is not None
        default = "" if named else "the default issuer; name another. "
        errors.append(AnnotationError(
            ISSUER, issuer, f"{default}issuer {issuer!r} may not be used from namespace "
            f"{namespace!r} (issuers.{issuer}.namespaces in the config)", ISSUER_NOT_ALLOWED))

    explicit_challenge: ChallengeType | None = None
    if CHALLENGE in annotations:
        try:
            explicit_challenge = parse_challenge(annotations[CHALLENGE])
        except ValueError as e:
            bad(CHALLENGE, str(e))

    dns_provider: str | None = None
    if DNS_PROVIDER in annotations:
        value = annotations[DNS_PROVIDER].strip()
        if value in config.dns_providers:
            dns_provider = value
        else:
            known = ", ".join(sorted(config.dns_providers)) or "none"
            bad(DNS_PROVIDER, f"no such DNS provider (configured: {known})")

    if explicit_challenge is not None:
        challenge = explicit_challenge
    elif DNS_PROVIDER in annotations:
        challenge = ChallengeType.DNS01
    else:
        challenge = ChallengeType.HTTP01
    if challenge is ChallengeType.DNS01:
        if DNS_PROVIDER not in annotations:
            dns_provider = config.default_dns_provider
            if dns_provider is None and CHALLENGE in annotations:
                bad(
                    CHALLENGE,
                    "dns-01 needs certbotk8s.io/dns-provider or defaultDnsProvider in the config",
                )
    elif DNS_PROVIDER in annotations and explicit_challenge is not None:
        bad(DNS_PROVIDER, "is only used with certbotk8s.io/challenge: dns-01")
        dns_provider = None
    scope = config.dns_providers.get(dns_provider) if dns_provider else None
    if scope is not None and namespace is not None and not scope.allows_namespace(namespace):
        # the provider's `namespaces` scope: its credentials serve only those tenants
        bad(DNS_PROVIDER if DNS_PROVIDER in annotations else CHALLENGE,
            f"DNS provider {dns_provider!r} may not be used from namespace {namespace!r}")

    key_type = theirs.key_type or config.renewal.key_type
    if KEY_TYPE in annotations:
        try:
            key_type = parse_key_type(annotations[KEY_TYPE])
        except ValueError as e:
            bad(KEY_TYPE, str(e))

    issuer_defaults = config.issuers.get(issuer)
    profile: str | None = issuer_defaults.default_profile if issuer_defaults else None
    if PROFILE in annotations:
        value = annotations[PROFILE].strip()
        issuer_config = config.issuers.get(issuer)
        if issuer_config is not None and issuer_config.allows_profile(value):
            profile = value
        else:
            bad(PROFILE, f"issuer {issuer!r} offers no such profile "
                f"(issuers.{issuer}.profiles in the config)", PROFILE_NOT_ALLOWED)

    renew_before = theirs.renew_before or config.renewal.renew_before
    if RENEW_BEFORE in annotations:
        try:
            renew_before = parse_duration(annotations[RENEW_BEFORE])
        except ValueError as e:
            bad(RENEW_BEFORE, str(e))

    gateway_namespace: str | None = None
    if GATEWAY_NAMESPACE in annotations:
        value = annotations[GATEWAY_NAMESPACE].strip()
        if kind is not SourceKind.ISTIO_GATEWAY:
            bad(GATEWAY_NAMESPACE, "only applies to Istio Gateways")
        elif not is_dns1123_label(value):
            bad(GATEWAY_NAMESPACE, "not a valid namespace name (DNS-1123 label)")
        else:
            gateway_namespace = value

    if errors:
        return None, tuple(errors)
    return (
        SourceOptions(
            issuer=issuer,
            challenge=challenge,
            dns_provider=dns_provider,
            key_type=key_type,
            profile=profile,
            renew_before=renew_before,
            gateway_namespace=gateway_namespace,
            notices=(cert_manager.ignored_notice(theirs.ignored),) if theirs.ignored else (),
        ),
        (),
    )
