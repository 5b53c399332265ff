"""DNS-01 provider: any DNS API that dns-lexicon supports, chosen by its provider name.

The lexicon provider class is used directly with the zone given explicitly (configured zone or
the one found by SOA), so lexicon's own zone guessing (tldextract, which downloads the public
suffix list) never runs. Credentials come from Secrets as provider options (`auth_token`,
`auth_access_key`, ...) and are scrubbed from every message.

Route53: the boto3 client is always built here, never by lexicon (whose client falls back to
boto3's default chain: AWS_* variables, ~/.aws files, instance metadata). With Secret keys it
signs with exactly those and ignores endpoints configured in the environment; with `ambient`
it is boto3's default chain, the process's own AWS identity (IRSA: AWS_ROLE_ARN +
AWS_WEB_IDENTITY_TOKEN_FILE -> STS AssumeRoleWithWebIdentity). The option `endpoint_url` (not a
lexicon option) points boto3 at another endpoint (a test server).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.ports import TxtRecord

# Lexicon logs API responses at DEBUG; keep them out of our logs whatever the root level says.
logging.getLogger("lexicon").setLevel(logging.WARNING)


def load_provider_module(provider: str) -> ModuleType:
    try:
        return importlib.import_module(f"lexicon._private.providers.{provider}")
    except ImportError as e:
        raise DnsSolverError(
            f"dns-lexicon has no provider {provider!r}, or the packages it needs are not "
            f"installed ({type(e).__name__}: {e.name})") from e


class LexiconProvider:
    """DnsRecordProvider through dns-lexicon's provider `name`."""

    def __init__(self, name: str, options: Mapping[str, str], credentials: Mapping[str, str],
                 ttl: int = 60, *, ambient: bool = False) -> None:
        self.name = name
        self._module = load_provider_module(name)
        self._options = dict(options)
        self._credentials = dict(credentials)
        self._ttl = ttl
        self._ambient = ambient

    def describe(self) -> str:
        where = self._options.get("endpoint_url") or self._options.get("pdns_server")
        return f"lexicon {self.name}" + (f" at {where}" if where else "")

    def probe(self) -> str | None:
        """No outage probe: this provider's errors are never taken for a server outage (they
        count as failed attempts), so there is nothing to watch come back."""
        return None

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.values():
            if secret:
                text = text.replace(secret, "***")
        return text[:400]

    def _error(self, action: str, record: TxtRecord, e: BaseException) -> DnsSolverError:
        detail = self._scrub(f"{type(e).__name__}: {e}")
        return DnsSolverError(
            f"{self.describe()}: {action} of TXT {record.fqdn} in zone {record.zone} failed: "
            f"{detail}")

    def _open(self, zone: str) -> Any:
        from lexicon.config import ConfigResolver

        provider_options: dict[str, Any] = {
            k: v for k, v in self._options.items() if k != "endpoint_url"}
        provider_options.update(self._credentials)
        config = ConfigResolver().with_dict({  # type: ignore[no-untyped-call]
            "provider_name": self.name, "domain": zone, "ttl": self._ttl,
            self.name: provider_options,
        })
        # Ours first: without keys or `ambient` it refuses before lexicon's constructor builds
        # its own client (which, keyless, would consult boto3's default chain).
        r53_client = self._route53_client() if self.name == "route53" else None
        provider = self._module.Provider(config)
        if r53_client is not None:
            provider.r53_client = r53_client
        provider.authenticate()
        return provider

    def _route53_client(self) -> Any:
        import boto3
        from botocore.config import Config

        endpoint = self._options.get("endpoint_url")
        if self._ambient:  # boto3's default chain: the pod's own identity
            return boto3.session.Session().client(
                "route53", endpoint_url=endpoint, region_name="us-east-1")
        key = (self._credentials.get("auth_access_key")
               or self._credentials.get("auth_username"))
        secret = (self._credentials.get("auth_access_secret")
                  or self._credentials.get("auth_token"))
        if not key or not secret:
            raise DnsSolverError(
                "no AWS credentials: give auth_access_key and "
                "auth_access_secret from Secrets, or `credentials: ambient` to use the pod's "
                "own AWS identity (the environment is not read otherwise)")
        return boto3.client(
            "route53", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(ignore_configured_endpoint_urls=True))

    def _has_value(self, provider: Any, record: TxtRecord) -> bool:
        listed = provider.list_records("TXT", record.fqdn, None)
        return any(str(r.get("content", "")).strip('"') == record.value for r in listed)

    def present(self, record: TxtRecord) -> None:
        try:
            provider = self._open(record.zone)
            if self._has_value(provider, record):
                return
            ok = provider.create_record("TXT", record.fqdn, record.value)
        except Exception as e:  # lexicon and its SDKs raise anything
            raise self._error("add", record, e) from e
        if ok is False:
            raise DnsSolverError(f"{self.describe()}: add of TXT {record.fqdn} in zone "
                                 f"{record.zone} failed (the provider reported failure)")

    def cleanup(self, record: TxtRecord) -> None:
        try:
            provider = self._open(record.zone)
            if not self._has_value(provider, record):
                return
            ok = provider.delete_record(None, "TXT", record.fqdn, record.value)
            if ok is False or self._has_value(provider, record):
                raise DnsSolverError("the value is still there after delete")
        except Exception as e:
            raise self._error("delete", record, e) from e
