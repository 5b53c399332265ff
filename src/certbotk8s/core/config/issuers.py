"""The `issuers` section: one entry per ACME CA (directory, contact, EAB, profiles, limits)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from certbotk8s.core.budget.ratelimit import Limits
from certbotk8s.core.config.fields import (
    EMPTY_IF_NULL,
    SECTION,
    Namespace,
    Namespaces,
    SecretName,
    Section,
    Text,
    Texts,
    in_controller_namespace,
    namespace_optional,
    read_as,
    whole,
)

KNOWN_PROFILES = frozenset({"classic", "tlsserver", "shortlived"})
UNLIMITED = 10**9  # a rate limit set to 0 in the file
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
# RFC 2606 example domains: Let's Encrypt refuses them as account contacts at the first order.
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
_HTTPS_URL = re.compile(r"^https://[^\s/?#@]+(?::\d+)?(?:/[^\s#]*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_example_contact(email: str) -> bool:
    """An address at an RFC 2606 example domain (or below one)."""
    domain = email.rpartition("@")[2].lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in _EXAMPLE_DOMAINS)


def _https(value: str) -> str:
    if not _HTTPS_URL.match(value):
        raise ValueError(f"must be an https URL, got {value!r}")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute file path, got {value!r}")
    return value


@dataclass(frozen=True, config=ConfigDict(**SECTION, json_schema_extra=namespace_optional))
class EabSecretRef(Section):
    namespace: Namespace
    name: SecretName
    key_id_key: Text
    hmac_key: Text


@dataclass(frozen=True, config=SECTION)
class EabConfig(Section):
    """External account binding: key id and HMAC key (base64url) from one Secret."""

    namespace: str
    name: str
    key_id_key: str
    hmac_key: str


@dataclass(frozen=True, config=SECTION)
class EabFile(Section):
    """`eab` in the file: `{secretRef: {namespace, name, keyIdKey, hmacKey}}`."""

    secret_ref: Annotated[EabSecretRef, BeforeValidator(in_controller_namespace)]


def _eab(value: Any, info: ValidationInfo) -> EabConfig | None:
    if value is None or isinstance(value, EabConfig):
        return value
    ref = read_as(EabFile, value, info).secret_ref
    return EabConfig(ref.namespace, ref.name, ref.key_id_key, ref.hmac_key)


_COUNT = whole(0, 10**9, "must be a whole number >= 0")
_SHARE = whole(1, 100, "must be a percentage 1..100")


@dataclass(frozen=True, config=SECTION)
class RateLimits(Section):
    """The CA's limits the budget keeps to; Let's Encrypt's by default, 0 turns one off."""

    certificates_per_domain: Annotated[int, _COUNT] = Limits.certs_per_domain
    certificates_per_identifier_set: Annotated[int, _COUNT] = Limits.certs_per_set
    orders_per3_hours: Annotated[int, _COUNT] = Field(default=Limits.orders_per_account,
                                                      alias="ordersPer3Hours")
    failed_authorizations_per_hour: Annotated[int, _COUNT] = Limits.failed_authz_per_identifier
    namespace_order_share: Annotated[int, _SHARE] = Limits.namespace_share_percent
    namespace_domain_share: Annotated[int, _SHARE] = Limits.namespace_domain_share_percent

    def limits(self) -> Limits:
        def counted(n: int) -> int:
            return n if n > 0 else UNLIMITED

        return replace(Limits(), certs_per_domain=counted(self.certificates_per_domain),
                       certs_per_set=counted(self.certificates_per_identifier_set),
                       orders_per_account=counted(self.orders_per3_hours),
                       failed_authz_per_identifier=counted(self.failed_authorizations_per_hour),
                       namespace_share_percent=self.namespace_order_share,
                       namespace_domain_share_percent=self.namespace_domain_share)


def _rate_limits(value: Any, info: ValidationInfo) -> Limits:
    if isinstance(value, Limits):
        return value
    return Limits() if value is None else read_as(RateLimits, value, info).limits()


@dataclass(frozen=True, config=SECTION)
class IssuerConfig(Section):
    """One ACME CA. `name` is its key under `issuers`; `profiles` None: not configured (the
    well-known ones); `namespaces` None: sources of every namespace may use it."""

    directory: Annotated[Text, AfterValidator(_https)]
    email: Annotated[Text, AfterValidator(_email)] | None = None
    eab: Annotated[EabConfig | None,
                   PlainValidator(_eab, json_schema_input_type=EabFile | None)] = None
    ca_bundle: Annotated[Text, AfterValidator(_absolute)] | None = None
    preferred_chain: Text | None = None
    profiles: Annotated[Texts | None, EMPTY_IF_NULL] = None
    rate_limits: Annotated[Limits, PlainValidator(
        _rate_limits, json_schema_input_type=RateLimits)] = Field(default_factory=Limits)
    default_profile: Text | None = None  # asked for when a source names none
    namespaces: Annotated[Namespaces | None, EMPTY_IF_NULL] = None
    name: SkipJsonSchema[str] = Field(default="", init=False)

    @field_validator("email")
    @classmethod
    def _reachable_contact(cls, email: str | None, info: ValidationInfo) -> str | None:
        if email is None or not is_example_contact(email):
            return email
        if info.data.get("directory") == LETSENCRYPT_PRODUCTION:
            raise ValueError(f"Let's Encrypt refuses example-domain contacts such as "
                             f"{email!r}: set a mailbox you read, or remove the key")
        return email  # elsewhere a warning (settings.Config)

    @field_validator("default_profile")
    @classmethod
    def _offered(cls, profile: str | None, info: ValidationInfo) -> str | None:
        if "profiles" not in info.data:
            return profile
        profiles = info.data["profiles"]
        if profile is not None and profile not in (
                KNOWN_PROFILES if profiles is None else profiles):
            raise ValueError(f"{profile!r} is not among the issuer's profiles")
        return profile

    def allows_profile(self, profile: str) -> bool:
        """Profiles a source may ask for: exactly those listed, else the well-known ones."""
        return profile in (KNOWN_PROFILES if self.profiles is None else self.profiles)

    def allows_namespace(self, namespace: str) -> bool:
        """Whether sources in `namespace` may use this issuer (its `namespaces` scope)."""
        return self.namespaces is None or namespace in self.namespaces
