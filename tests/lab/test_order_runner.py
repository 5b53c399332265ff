"""The controller's order runner decides again on the Secret as the API server holds it: an
order handed over by a pass that read a stale informer cache is not placed (real lab)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.app.controller.controller import Controller
from certbotk8s.app.controller.order_runner import OrderRunner
from certbotk8s.app.inflight import RecordedInflight
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import survey
from certbotk8s.app.runtime import Runtime, build_runtime
from certbotk8s.core.config.settings import load_config
from certbotk8s.core.renewal.plan import Action, ActionKind

from .conftest import Lab, read_secret

pytestmark = pytest.mark.lab


class Leader:
    """Always the leader: the runner alone is under test, not the Lease."""

    def start(self) -> None:
        return None

    def is_leader(self) -> bool:
        return True

    def stop(self, release: bool = True) -> None:
        return None


def _run_once(runtime: Runtime, api: ApiClient, action: Action) -> None:
    """A fresh controller's runner takes `action` (as a reconcile pass hands it over) and
    finishes it; the informers are never started, so only the runner's own reads count."""
    controller = Controller(runtime.deps, api, Leader(), Metrics(process=False),
                            RecordedInflight(runtime.deps.records))
    runner: OrderRunner = controller.runner
    runner.order(action)  # on this thread, as the worker holding the Secret's key: until done


def _serial(secret: Any) -> str:
    return str(secret.metadata.annotations["certbotk8s.io/serial"]) if secret else ""


def test_an_issue_decided_on_a_stale_cache_orders_nothing_once_the_secret_exists(
    lab: Lab, controller_api: ApiClient, admin_api: ApiClient, namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The run that found this: a pass woken by the end of an order ran before the informer
    # had the new Secret, saw it missing and issued again a second later.
    config = load_config(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    runtime = build_runtime(config, controller_api)
    host = lab.host("stale")
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.create_namespaced_ingress(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"certbotk8s.io/enabled": "true",
                                                    "certbotk8s.io/challenge": "dns-01"}},
        "spec": {"tls": [{"hosts": [host], "secretName": "web-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    (stale,) = survey(runtime.deps, [namespace], read_ari=False).actions
    assert stale.kind is ActionKind.ISSUE, stale

    _run_once(runtime, controller_api, stale)
    issued = read_secret(admin_api, namespace, "web-tls")
    assert issued is not None and _serial(issued), "the first order wrote no certificate"

    caplog.clear()  # the first order's records (kept when another test set INFO already)
    with caplog.at_level(logging.INFO, logger="certbotk8s.app.controller.order_runner"):
        _run_once(runtime, controller_api, stale)  # the same ISSUE, decided before the write
    after = read_secret(admin_api, namespace, "web-tls")
    assert _serial(after) == _serial(issued), "a second certificate was ordered"
    assert not [r for r in caplog.records if "new order" in r.getMessage()], caplog.text
    assert any("no order: the Secret changed" in r.getMessage() for r in caplog.records)
