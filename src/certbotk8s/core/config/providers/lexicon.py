"""`type: lexicon`: any provider dns-lexicon supports, by name.

`options` are plain; `credentials` are Secret keys (`auth_token: {name: cf, key: token}`), or,
for a provider whose SDK has one (route53), `credentials: ambient`: the process's own cloud
identity. Without `ambient` nothing is read from the process environment.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from certbotk8s.core.config.fields import (
    SECTION,
    SecretKeyRef,
    Section,
    Text,
    named_pairs,
    secret_ref,
    unknown_key,
)

AMBIENT = "ambient"
# lexicon providers whose SDK has an ambient credential chain certbotk8s can hand them to:
# route53 (boto3: web identity / IRSA, EKS Pod Identity, ECS and EC2 roles). lexicon's azure
# and googleclouddns providers take explicit keys only.
AMBIENT_PROVIDERS = frozenset({"route53"})
_PROVIDER = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_OPTION = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _provider(value: str) -> str:
    if not _PROVIDER.match(value):
        raise ValueError(f"{value!r} is not a dns-lexicon provider name")
    return value


def _option_name(key: str) -> str:
    if not _OPTION.match(key):
        raise ValueError("option names are lower-case letters, digits, '_', '-'")
    return key


def _option(key: str) -> str:
    if _option_name(key).startswith("auth_"):
        raise ValueError("credentials are read from a Secret: put it under credentials")
    return key


def _option_value(value: Any, info: ValidationInfo) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be a string or number, got {value!r}")
    return str(value)


def _credentials(value: Any, info: ValidationInfo) -> Any:
    refs = named_pairs(_option_name, secret_ref)(value, info)
    provider = info.data.get("provider", "")
    if info.data.get("ambient") and provider not in AMBIENT_PROVIDERS:
        raise ValueError(f"ambient credentials are supported for lexicon providers "
                         f"{', '.join(sorted(AMBIENT_PROVIDERS))} only")
    if provider == "route53" and not info.data.get("ambient") and not refs:
        raise ValueError("route53 needs auth_access_key and auth_access_secret from Secrets, "
                         "or `credentials: ambient` (the pod's own AWS identity, e.g. IRSA)")
    return refs


Options = Annotated[tuple[tuple[str, str], ...], PlainValidator(
    named_pairs(_option, _option_value), json_schema_input_type=dict[str, str | int])]
Credentials = Annotated[tuple[tuple[str, SecretKeyRef], ...], PlainValidator(
    _credentials, json_schema_input_type=dict[str, SecretKeyRef] | Literal["ambient"])]


@dataclass(frozen=True, config=SECTION)
class LexiconConfig(Section):
    """`ambient` is what `credentials: ambient` in the file says (not a key of its own)."""

    provider: Annotated[Text, AfterValidator(_provider)]
    options: Options = ()
    ambient: SkipJsonSchema[bool] = False
    credentials: Credentials = Field(default=(), validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _ambient_word(cls, data: Any) -> Any:
        if not isinstance(data, dict):  # built in Python
            return data
        if "ambient" in data:  # the Python name of `credentials: ambient`, not a key
            unknown_key("ambient", data["ambient"])
        if data.get("credentials") == AMBIENT:
            return {**data, "credentials": (), "ambient": True}
        return data

    @property
    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return tuple(ref for _, ref in self.credentials)
