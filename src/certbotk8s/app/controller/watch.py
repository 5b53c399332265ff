"""The controller's informers: sources and certbotk8s's own Secrets, one wake event for all."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from certbotk8s.adapters.kube.client import ApiContact
from certbotk8s.adapters.kube.discovery import ServedVersions, watched
from certbotk8s.adapters.kube.secrets import to_stored_secret
from certbotk8s.adapters.kube.watch import Informer, Key, WatchedResource
from certbotk8s.app.records import Records
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import Discovery, ObservedSecret, SecretRef
from certbotk8s.core.sources.discovery import ROLE_LABEL, trim_source
from certbotk8s.core.sources.host_memo import HostMemo
from certbotk8s.core.sources.ownership import discover_owned, failing_claims, holdings
from certbotk8s.core.sources.resources import SOURCES
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import CERT_MANAGER_LABEL, observe, with_record

MANAGED_TLS = WatchedResource(
    "secrets (certbotk8s-managed)", "/api/v1/secrets", "v1", "Secret",
    label_selector=f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}",
    field_selector="type=kubernetes.io/tls",
)
# cert-manager's Secrets, watched only under config `migration` (adopted: docs/migrating.md);
# once certbotk8s wrote one it carries our label too and is watched as MANAGED_TLS only.
CERT_MANAGER_TLS = WatchedResource(
    "secrets (cert-manager's, to adopt)", "/api/v1/secrets", "v1", "Secret",
    label_selector=f"{CERT_MANAGER_LABEL}=true,"
                   f"{secret_meta.MANAGED_BY_LABEL}!={secret_meta.MANAGED_BY_VALUE}",
    field_selector="type=kubernetes.io/tls",
)
def observe_json(obj: dict[str, Any]) -> ObservedSecret:
    """Informer transform: keep what policy needs, drop the Secret's data (memory)."""
    return observe(to_stored_secret(obj))


def observe_adoptable(obj: dict[str, Any]) -> ObservedSecret:
    """The same for cert-manager's Secrets under config `migration`: writable by certbotk8s."""
    return observe(to_stored_secret(obj), adopt_cert_manager=True)


class InformerGroup:
    """One resource's informers (one cluster-wide, or one per namespace) read as one cache."""

    def __init__(self, informers: Sequence[Informer]) -> None:
        self.informers = list(informers)
        self._by_namespace = {i.namespace: i for i in self.informers}

    @property
    def cache(self) -> InformerGroup:
        return self  # reads like an Informer's cache: get, items, values, len

    @property
    def missing(self) -> bool:
        return any(i.missing for i in self.informers)

    def get(self, key: Key) -> Any:
        informer = self._by_namespace.get(key[0]) or self._by_namespace.get(None)
        return informer.cache.get(key) if informer is not None else None

    def items(self) -> list[tuple[Key, Any]]:
        return [item for i in self.informers for item in list(i.cache.items())]

    def values(self) -> list[Any]:
        return [value for i in self.informers for value in list(i.cache.values())]

    def __len__(self) -> int:
        return sum(len(i.cache) for i in self.informers)


class Watch:
    """Informer caches plus `wake`, set on every change that may alter what is wanted.

    `namespaces` empty: every resource is watched cluster-wide. Otherwise (namespaced mode,
    Role-only RBAC) each is watched in each of those namespaces and nowhere else.
    """

    def __init__(self, api: Any, namespaces: Sequence[str] = (),
                 health: ApiContact | None = None, records: Records | None = None,
                 served: ServedVersions | None = None,
                 adopt_cert_manager: bool = False) -> None:
        self.wake = threading.Event()
        self.records = records if records is not None else Records()
        self._discovering = threading.Lock()
        self._host_memo = HostMemo()
        self.namespaces = tuple(namespaces)
        scopes: list[str | None] = list(namespaces) or [None]
        # The one source table; each type at the version the cluster serves, found once
        # (as `renew --once` does), found again only while a type is missing.
        served = served or ServedVersions(api)

        def on_source(key: Key | None, obj: Any) -> None:
            # Our own temporary HTTP-01 routing objects never change what is wanted.
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(ROLE_LABEL) != "http01-route":
                self.wake.set()

        self.informers: dict[str, InformerGroup] = {
            key: InformerGroup([Informer(api, watched(r, r.versions[0], ns), on_source,
                                         transform=trim_source, health=health,
                                         locate=served.locate(r, ns))
                                for ns in scopes])
            for key, r in SOURCES.items()
        }
        self.secrets = InformerGroup([
            Informer(api, MANAGED_TLS.in_namespace(ns), lambda key, obj: self.wake.set(),
                     transform=observe_json, health=health) for ns in scopes])
        self.adoptable = InformerGroup([
            Informer(api, CERT_MANAGER_TLS.in_namespace(ns), lambda key, obj: self.wake.set(),
                     transform=observe_adoptable, health=health)
            for ns in (scopes if adopt_cert_manager else [])])

    def all(self) -> list[Informer]:
        groups = [*self.informers.values(), self.secrets, self.adoptable]
        return [i for group in groups for i in group.informers]

    def start(self) -> None:
        for informer in self.all():
            informer.start()

    def stop(self) -> None:
        for informer in self.all():
            informer.stop()

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.all())

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every informer listed once (at most `timeout` seconds in all)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for informer in self.all():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not informer.synced.wait(left):
                return False
        return True

    def sources(self, key: str) -> list[Any]:
        """The cached objects of one source type (`core.sources.resources.SOURCES` key)."""
        group = self.informers[key]
        return [] if group.missing else group.values()

    def discovery(self, config: Config) -> Discovery:
        """Desired certificates, after host ownership against the controller's records."""
        kept = self.records.snapshot()
        held = holdings(kept, datetime.now(UTC), config.tenants.claim_grace)
        # One discovery at a time (several threads ask; each is CPU under the GIL anyway), so
        # they share what the last one normalised: a hostile source's hosts cost once.
        with self._discovering:
            return discover_owned(self.sources("ingresses"), self.sources("istio"),
                                  self.sources("gateway_api"), self.sources("grants"), config,
                                  held, failing_claims(kept), memo=self._host_memo)

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        """The cached Secret with the controller's record of it joined in."""
        key = (ref.namespace, ref.name)
        value: ObservedSecret | None = self.secrets.get(key) or self.adoptable.get(key)
        return with_record(value, self.records.get(ref))

    def managed(self) -> list[tuple[Key, ObservedSecret]]:
        """A snapshot of every labelled Secret in the cache, records joined in."""
        return [(key, joined) for key, seen in self.secrets.items() + self.adoptable.items()
                if (joined := with_record(seen, self.records.get(SecretRef(*key)))) is not None]
