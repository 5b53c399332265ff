"""One AcmeEngine per configured issuer, with its account key kept in the AccountStore."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from certbotk8s.adapters.acme_engine import AcmeEngine, ExternalAccountBinding
from certbotk8s.adapters.acme_network import RequestObserver
from certbotk8s.core import keys
from certbotk8s.core.config import Config, IssuerConfig
from certbotk8s.core.errors import AcmeError
from certbotk8s.core.model import KeyType
from certbotk8s.core.ports import AccountStore, SecretStore

log = logging.getLogger(__name__)

EngineFactory = Callable[..., AcmeEngine]


class IssuerRegistry:
    """Engines by issuer name, created on first use; the account is registered once and reused.

    The account key is generated on first use and saved before the account is registered, so a
    crash in between leaves a key whose account `onlyReturnExisting` recovers next time.
    """

    def __init__(self, config: Config, accounts: AccountStore, secrets: SecretStore,
                 observer: RequestObserver | None = None) -> None:
        self._config = config
        self._accounts = accounts
        self._secrets = secrets
        self._observer = observer
        self._engines: dict[str, AcmeEngine] = {}
        self._lock = threading.Lock()

    def issuer(self, name: str) -> IssuerConfig:
        try:
            return self._config.issuers[name]
        except KeyError as e:
            raise AcmeError(f"issuer {name!r} is not configured") from e

    def engine(self, name: str) -> AcmeEngine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._create(self.issuer(name))
                self._engines[name] = engine
            return engine

    def _create(self, issuer: IssuerConfig) -> AcmeEngine:
        stored = self._accounts.load(issuer.name)
        if stored is None:
            key = keys.generate_key(KeyType.ECDSA_P256)
            self._accounts.save(issuer.name, keys.key_to_pem(key), None)
            uri = None
        else:
            key_pem, uri = stored
            key = keys.load_key_pem(key_pem)
        engine = AcmeEngine(
            issuer.directory,
            key,
            account_uri=uri,
            email=issuer.email,
            eab=self._eab(issuer),
            ca_bundle=issuer.ca_bundle,
            observer=self._observer,
        )
        registered = engine.ensure_account()
        if registered != uri:
            self._accounts.save(issuer.name, keys.key_to_pem(key), registered)
            log.info("ACME account for issuer %s: %s", issuer.name, registered)
        return engine

    def _eab(self, issuer: IssuerConfig) -> ExternalAccountBinding | None:
        if issuer.eab is None:
            return None
        secret = self._secrets.read(issuer.eab.namespace, issuer.eab.name)
        if secret is None:
            raise AcmeError(
                f"issuer {issuer.name}: EAB Secret {issuer.eab.namespace}/{issuer.eab.name} "
                "not found"
            )
        kid = secret.data.get(issuer.eab.key_id_key)
        hmac = secret.data.get(issuer.eab.hmac_key)
        if not kid or not hmac:
            raise AcmeError(
                f"issuer {issuer.name}: EAB Secret {issuer.eab.namespace}/{issuer.eab.name} "
                f"lacks key {issuer.eab.key_id_key!r} or {issuer.eab.hmac_key!r}"
            )
        return ExternalAccountBinding(kid.decode().strip(), hmac.decode().strip())
