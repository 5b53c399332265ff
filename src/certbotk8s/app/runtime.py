"""Build the adapters and services a CLI command needs from a kubeconfig and the config file."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client import ApiClient

from certbotk8s.adapters.http01.responder import MemoryTokenStore
from certbotk8s.adapters.http01.routing import KubeRoutingPublisher
from certbotk8s.adapters.kube.configmaps import ConfigMapText, read_config_map
from certbotk8s.adapters.kube.discovery import ServedVersions
from certbotk8s.adapters.kube.ledger import KubeLedger
from certbotk8s.adapters.kube.records import KubeRecordStore
from certbotk8s.adapters.kube.sources import (
    KubeAccountStore,
    KubeEventRecorder,
    KubeSecretStore,
    KubeSourceReader,
)
from certbotk8s.app.accounts import AccountEvents, AccountMetric
from certbotk8s.app.event_queue import QueuedEventRecorder
from certbotk8s.app.issuers import IssuerObserver, IssuerRegistry
from certbotk8s.app.orders import PassDeps
from certbotk8s.app.records import Records
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.config.settings import Config, ConfigError, load_config
from certbotk8s.core.ports import EventRecorder, TokenStore

DEFAULT_CONFIG_PATH = "/etc/certbotk8s/config.yaml"
DEFAULT_CONTROLLER_NAMESPACE = "certbotk8s"  # manifests/base and the chart's documented install


def config_in_cluster(path: str | None) -> bool:
    """Whether the config is to be read from the cluster: no file named (flag or
    $CERTBOTK8S_CONFIG) and none at the in-cluster path (a laptop, not the controller's pod)."""
    return not (path or os.environ.get("CERTBOTK8S_CONFIG")) \
        and not Path(DEFAULT_CONFIG_PATH).exists()


def config_from_cluster(api: ApiClient, namespace: str, name: str | None
                        ) -> tuple[Config, ConfigMapText]:
    """The controller's config from its ConfigMap in `namespace` (adapters/kube/configmaps.py)."""
    found = read_config_map(api, namespace, name)
    if found is None:
        which = f"ConfigMap {namespace}/{name}" if name else \
            f"certbotk8s ConfigMap in namespace {namespace}"
        raise ConfigError([f"no config file (--config, $CERTBOTK8S_CONFIG) and no {which} "
                           "(--controller-namespace, --config-map)"])
    try:
        return load_config(found.text, namespace), found
    except ConfigError as e:
        raise ConfigError([f"ConfigMap {namespace}/{found.name}: {line}"
                           for line in e.errors]) from e


def read_config(path: str | None) -> Config:
    """The config file at `path`, $CERTBOTK8S_CONFIG or the in-cluster default.

    A file without `controllerNamespace` means the pod's own namespace ($POD_NAMESPACE, set by
    the downward API in the manifests and the chart), so renaming the namespace just works.
    """
    chosen = path or os.environ.get("CERTBOTK8S_CONFIG") or DEFAULT_CONFIG_PATH
    try:
        text = Path(chosen).read_text()
    except OSError as e:
        raise ConfigError([f"{chosen}: cannot read: {e.strerror}"]) from e
    return load_config(text, os.environ.get("POD_NAMESPACE") or None)


@dataclass
class Runtime:
    config: Config
    api: ApiClient
    deps: PassDeps
    tokens: TokenStore
    routing: KubeRoutingPublisher
    event_queue: QueuedEventRecorder | None = None  # started; `close` it when done
    served: ServedVersions | None = None  # the source table's versions, as this cluster serves


def build_runtime(config: Config, api: ApiClient, tokens: TokenStore | None = None,
                  observer: IssuerObserver | None = None,
                  account_metric: AccountMetric | None = None,
                  queued_events: Callable[[EventRecorder], QueuedEventRecorder] | None = None,
                  write_behind: bool = False, namespaces: Sequence[str] = (),
                  share_routing_services: bool = False) -> Runtime:
    """`queued_events`: post Events off the order path through the queue it builds around the
    recorder (the controller); None posts them synchronously (one-shot commands).
    `write_behind`: the certificate records are saved by the owner's periodic flush, never on
    the thread that changed them (the controller). `namespaces`: the namespaces served (empty:
    all); HTTP-01 routing is written nowhere else. `share_routing_services`: one ExternalName
    Service per source namespace across orders (the controller's leader, which retires them;
    adapters.http01.routing)."""
    secrets = KubeSecretStore(api)
    tokens = tokens or MemoryTokenStore()
    http01 = config.solver.http01
    served = ServedVersions(api)  # which version of each type: asked once, for both below
    routing = KubeRoutingPublisher(
        api, config.controller_namespace, solver_service=http01.solver_service,
        solver_port=http01.solver_service_port, path_type=http01.path_type, served=served,
        route_namespace=http01.route_namespace, namespaces=namespaces,
        share_services=share_routing_services,
    )
    events: EventRecorder = KubeEventRecorder(
        api, instance=os.environ.get("POD_NAME", socket.gethostname()))
    queue = queued_events(events).start() if queued_events is not None else None
    events = queue or events
    deps = PassDeps(
        config=config,
        sources=KubeSourceReader(api, served),
        secrets=secrets,
        events=events,
        issuers=IssuerRegistry(
            config, KubeAccountStore(api, config.controller_namespace), secrets, observer,
            AccountEvents(events, config.controller_namespace, account_metric)),
        solvers=SolverFactory(config, secrets, tokens, routing),
        ledger=KubeLedger(api, config.controller_namespace),
        records=Records(KubeRecordStore(api, config.controller_namespace),
                        write_behind=write_behind),
    )
    return Runtime(config, api, deps, tokens, routing, queue, served)
