"""`type: webhook`: POST {action, fqdn, zone, value} to `url`, bearer token from a Secret."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from certbotk8s.core.config.fields import (
    SECTION,
    SecretKeyRef,
    SecretRefField,
    Section,
    Text,
    Timeout,
    whole,
)

_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(?::\d+)?(?:/[^\s#]*)?$")


def _url(value: str) -> str:
    if not _HTTP_URL.match(value):
        raise ValueError(f"must be an http(s) URL without credentials, got {value!r}")
    return value


@dataclass(frozen=True, config=SECTION)
class WebhookConfig(Section):
    """`token` (file: `tokenSecretRef`) is sent as a bearer token when given."""

    url: Annotated[Text, AfterValidator(_url)]
    token: SecretRefField | None = Field(default=None, alias="tokenSecretRef")
    timeout: Timeout = timedelta(seconds=10)
    retries: Annotated[int, whole(0, 10, "must be a whole number 0-10")] = 3

    @property
    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.token,) if self.token is not None else ()
