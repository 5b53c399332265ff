"""One AcmeEngine per configured issuer, with its account key kept in the AccountStore."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from certbotk8s.adapters.acme.engine import AccountChange, AcmeEngine, ExternalAccountBinding
from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.core.config.settings import Config, IssuerConfig
from certbotk8s.core.errors import AcmeAccountRecoveryFailed, AcmeError, CertbotK8sError
from certbotk8s.core.model import KeyType
from certbotk8s.core.pki import keys
from certbotk8s.core.ports import AccountStore, SecretStore

log = logging.getLogger(__name__)

class AccountReporter(Protocol):
    """Told when an issuer's account had to be registered again (Event, metric)."""

    def recovered(self, issuer: str, change: AccountChange) -> None: ...

    def recovery_failed(self, issuer: str, error: AcmeAccountRecoveryFailed) -> None: ...


# Sees each HTTP request to the CA of the named issuer (the metrics count them per issuer).
IssuerObserver = Callable[[str, RequestRecord], None]


class IssuerRegistry:
    """Engines by issuer name, created on first use; the account is registered once and reused.

    The account key is generated on first use and saved before the account is registered, so a
    crash in between leaves a key whose account `onlyReturnExisting` recovers next time.
    When the CA forgets or refuses the account, the engine registers again and the new URI
    (and key, if the CA refused the old one) is saved here before the order is retried.
    """

    def __init__(self, config: Config, accounts: AccountStore, secrets: SecretStore,
                 observer: IssuerObserver | None = None,
                 reporter: AccountReporter | None = None) -> None:
        self._reporter = reporter
        self._config = config
        self._accounts = accounts
        self._secrets = secrets
        self._observer = observer
        self._engines: dict[str, AcmeEngine] = {}
        self._key_pems: dict[str, bytes] = {}  # the key each engine signs with now
        self._lock = threading.Lock()  # guards the two dicts below, never held over I/O
        self._creating: dict[str, threading.Lock] = {}  # one per issuer


    def issuer(self, name: str) -> IssuerConfig:
        try:
            return self._config.issuers[name]
        except KeyError as e:
            raise AcmeError(f"issuer {name!r} is not configured") from e

    def engine(self, name: str) -> AcmeEngine:
        # Registering an account talks to the CA: an issuer whose CA hangs must not hold up
        # the orders of every other issuer, so only that issuer's creation is serialized.
        issuer = self.issuer(name)  # an unknown name is refused before it gets a lock entry
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                return engine
            creating = self._creating.setdefault(name, threading.Lock())
        with creating:
            with self._lock:
                engine = self._engines.get(name)  # made while this thread waited
            if engine is None:
                engine = self._create(issuer)
                with self._lock:
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
            observer=(None if self._observer is None
                      else functools.partial(self._observer, issuer.name)),
            on_account_change=lambda change: self._account_changed(issuer.name, change),
            on_account_failure=lambda error: self._account_failed(issuer.name, error),
        )
        self._key_pems[issuer.name] = keys.key_to_pem(key)
        registered = engine.ensure_account()
        if registered != uri:
            self._accounts.save(issuer.name, keys.key_to_pem(key), registered)
            log.info("ACME account for issuer %s: %s", issuer.name, registered)
        return engine

    def _account_changed(self, issuer: str, change: AccountChange) -> None:
        if change.new_key_pem is not None:
            self._key_pems[issuer] = change.new_key_pem
        key_pem = self._key_pems[issuer]
        try:
            self._accounts.save(issuer, key_pem, change.uri)
        except CertbotK8sError as e:
            # The order goes on with the new account; the next start finds it again by key
            # (onlyReturnExisting) unless the key itself was new.
            log.warning("issuer %s: cannot save the re-registered account: %s", issuer, e)
        if self._reporter is not None:
            self._reporter.recovered(issuer, change)

    def _account_failed(self, issuer: str, error: AcmeAccountRecoveryFailed) -> None:
        if self._reporter is not None:
            self._reporter.recovery_failed(issuer, error)

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
