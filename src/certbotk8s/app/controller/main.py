"""Wiring for `certbotk8s controller`: shared token store, servers, Lease, controller."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta

from certbotk8s.adapters.http01.responder import Http01Responder
from certbotk8s.adapters.kube.client import load_api_client
from certbotk8s.adapters.kube.inflight import KubeInflightStore
from certbotk8s.adapters.kube.lease import LeaseElector
from certbotk8s.adapters.kube.tokens import KubeTokenStore
from certbotk8s.app.controller.controller import Controller
from certbotk8s.app.controller.http_server import ControllerHttpServer
from certbotk8s.app.event_queue import QueuedEventRecorder
from certbotk8s.app.inflight import RecordedInflight
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.runtime import build_runtime
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import KubeError
from certbotk8s.core.model import ObjectRef

log = logging.getLogger(__name__)

# A token still in the shared Secret this long after the leader last looked belongs to no order
# anyone will finish: HTTP-01 orders end within solver.orderTimeout (at most 10 min), resumed
# ones too.
STALE_TOKEN_SWEEP = timedelta(minutes=10)


def _remove_stale_tokens(tokens: KubeTokenStore, elector: LeaseElector) -> None:
    if not elector.is_leader():
        return
    try:
        stale = tokens.remove_stale()
    except KubeError as e:
        log.warning("HTTP-01 token store: cannot remove stale tokens: %s", e)
        return
    if stale:
        log.info("removed %d HTTP-01 tokens of orders nobody will finish", len(stale))


def main(config: Config, args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())

    metrics = Metrics()
    api = load_api_client(args.kubeconfig, args.context)
    # A finished order's token goes with the next order's token write (or within 2 s).
    tokens = KubeTokenStore(api, config.controller_namespace, delete_delay=2.0)
    runtime = build_runtime(
        config, api, tokens=tokens, observer=metrics.observe_acme,
        account_metric=metrics.account_recovery,
        queued_events=lambda events: QueuedEventRecorder(
            events, on_drop=metrics.count_event_dropped),
        write_behind=True, namespaces=args.namespace, share_routing_services=True)
    identity = args.identity or f"{socket.gethostname()}-{os.getpid()}"
    holder: dict[str, Controller] = {}
    elector = LeaseElector(
        api, config.controller_namespace, args.lease_name, identity=identity,
        lease_duration=args.lease_duration, renew_deadline=args.lease_duration * 2 / 3,
        retry_period=max(0.2, args.lease_duration / 7.5),
        on_started_leading=lambda: holder["c"].on_started_leading(elector.takeover()),
        on_stopped_leading=lambda: holder["c"].on_stopped_leading(),
        on_resumed_leading=lambda: holder["c"].on_resumed_leading(),
    )
    def sweep() -> None:
        removed = runtime.routing.sweep()
        if removed:
            log.info("removed %d HTTP-01 routing objects left by a previous leader",
                     len(removed))

    def retire_routing_services(everywhere: bool = False) -> None:
        """The ExternalName Services of source namespaces that no HTTP-01 certificate routes
        from any more (`everywhere`: all, the leader stopping). Leader only."""
        if not elector.is_leader() or not (everywhere or controller.watch.synced()):
            return
        wanted = () if everywhere else controller.watch.discovery(config).desired
        retired = runtime.routing.retire_shared(wanted)
        if retired:
            log.info("removed the HTTP-01 routing Service of %d namespaces (%s)", len(retired),
                     "leader stopping" if everywhere else "no HTTP-01 certificate routes there")

    # Orders in flight live in the certificate records; orders an earlier version left in
    # its own Secret are read (and cleared there) too.
    inflight = RecordedInflight(runtime.deps.records,
                                legacy=KubeInflightStore(api, config.controller_namespace))
    controller = Controller(runtime.deps, api, elector, metrics, inflight,
                            on_leading=sweep, workers=args.workers,
                            before_release=lambda: retire_routing_services(everywhere=True),
                            namespaces=args.namespace, identity=identity,
                            served=runtime.served,
                            lease=ObjectRef("coordination.k8s.io/v1", "Lease",
                                            config.controller_namespace, args.lease_name))
    holder["c"] = controller
    elector.health = controller.api_health  # Lease renewals count as contacts too (etcd away)
    http01 = config.solver.http01
    try:
        solver = Http01Responder(tokens, http01.listen_address, http01.port)
        probes = ControllerHttpServer(tokens, metrics, args.metrics_address, args.metrics_port,
                                      ready=controller.ready, healthy=lambda: True,
                                      ready_detail=controller.readiness_detail)
    except OSError as e:
        log.error("cannot listen (HTTP-01 %s:%d, probes %s:%d): %s", http01.listen_address,
                  http01.port, args.metrics_address, args.metrics_port, e.strerror)
        return 1
    tokens.start()
    solver.start()
    probes.start()
    controller.start()
    # Longer than any HTTP-01 order may take (solver.orderTimeout): what is still there is stale.
    # The same sweep drops in-flight order records no order will resume (gone namespaces...),
    # writes again any certificate record someone deleted from the controller's namespace, and
    # removes the routing Services of namespaces no HTTP-01 certificate routes from any more.
    def housekeeping() -> None:
        _remove_stale_tokens(tokens, elector)
        controller.sweep_inflight()
        controller.restore_records()
        retire_routing_services()

    controller.schedule.every("tokens", housekeeping, STALE_TOKEN_SWEEP,
                              first=datetime.now(UTC) + STALE_TOKEN_SWEEP)
    elector.start()
    log.info("controller %s running: HTTP-01 on %s:%d, probes and metrics on %s:%d",
             identity, http01.listen_address, http01.port, args.metrics_address, probes.port)
    stop.wait()
    log.info("SIGTERM: stopping (orders in flight get a grace period)")
    controller.stop()
    solver.stop()
    probes.stop()
    tokens.stop()
    if runtime.event_queue is not None:
        runtime.event_queue.close(timeout=5.0)
    return 0
