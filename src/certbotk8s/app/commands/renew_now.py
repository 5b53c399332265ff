"""`certbotk8s renew NAMESPACE/SECRET` (and the renewal after `revoke`): hand the request to the
running controller, or order here while answering HTTP-01 (app/commands/force.py holds the
request itself; `renew --once` uses `serve_and_run` too)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from kubernetes.client import ApiClient

from certbotk8s.adapters.http01.responder import Http01Responder
from certbotk8s.adapters.kube.lease import active_holder
from certbotk8s.adapters.kube.tokens import KubeTokenStore
from certbotk8s.app.commands import force
from certbotk8s.app.oneshot.run import PassReport, run_pass
from certbotk8s.app.runtime import Runtime, build_runtime
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import SecretRef
from certbotk8s.core.renewal.waits import controller_wait
from certbotk8s.core.sources.text import printable


def serve_and_run(config: Config, api: ApiClient, shared_tokens: bool,
                  run: Callable[[Runtime], PassReport],
                  controller_answers: bool = False,
                  namespaces: Sequence[str] = ()) -> PassReport | None:
    """Run `run` with this process answering HTTP-01 (tokens shared when asked); None when the
    HTTP-01 port cannot be bound (the error is printed). `controller_answers`: a controller
    holds the Lease and its replicas answer from the shared tokens, so a taken port (this
    command run inside the controller's pod) is no obstacle. `namespaces`: those served (empty:
    all), where HTTP-01 routing may be written."""
    shared: KubeTokenStore | None = None
    if shared_tokens:
        shared = KubeTokenStore(api, config.controller_namespace)
        shared.start()
    try:
        runtime = build_runtime(config, api, tokens=shared, namespaces=namespaces)
        http01 = config.solver.http01
        try:
            responder = Http01Responder(runtime.tokens, http01.listen_address, http01.port)
        except OSError as e:
            where = f"{http01.listen_address}:{http01.port}"
            if shared is not None and controller_answers:
                print(f"certbotk8s: HTTP-01 port {where} is taken ({e.strerror}; inside the "
                      "controller's pod?): the controller's replicas answer the challenges "
                      "from the shared token store", file=sys.stderr, flush=True)
                return run(runtime)
            print(f"certbotk8s: cannot serve HTTP-01 on {where}: {e.strerror}", file=sys.stderr)
            return None
        with responder:
            return run(runtime)
    finally:
        if shared is not None:
            shared.stop()


def progress(line: str) -> None:
    """One line of a pass's progress on the terminal."""
    print(printable(line), flush=True)  # lines carry tenant-chosen names: no terminal escapes


def default_timeout(config: Config) -> float:
    """Seconds to wait for the controller when `--timeout` is not given: the longest order
    `config` allows, and a margin (core.renewal.waits.controller_wait)."""
    solver = config.solver
    return controller_wait(solver.dns01.propagation_timeout,
                           solver.order_timeout).total_seconds()


def renew_targets(config: Config, api: ApiClient, targets: list[SecretRef], *,
                  lease_name: str, timeout: float | None, shared_tokens: bool) -> bool:
    """Renew `targets` now; whether every one was renewed (each outcome printed).

    Each existing Secret gets the request annotation; a controller holding the Lease renews it
    and this waits up to `timeout` s (None: `default_timeout`); with none, or none answering,
    or for a Secret that does not exist yet (never issued), the certificate is ordered here,
    the request lifting its backoff for that attempt."""
    if timeout is None:
        timeout = default_timeout(config)
    runtime = build_runtime(config, api)
    failed = 0
    now = force.now_utc()
    # A Secret never issued (missing: nothing to annotate) is ordered here, whatever its backoff.
    existing = [ref for ref in targets if force.existing_secret(runtime.deps.secrets, ref)]
    never = [ref for ref in targets if ref not in existing]
    before = {ref: force.serial_of(runtime.deps.secrets.read(ref.namespace, ref.name))
              for ref in existing}
    for ref in existing:
        force.request_renewal(runtime.deps.secrets, ref, now)
    holder = active_holder(api, config.controller_namespace, lease_name, force.now_utc())
    pending = list(targets)
    for ref in never:
        print(f"{ref}: no such Secret yet (never issued); ordering it here", flush=True)
    if holder is not None and existing:
        print(f"asked the controller ({holder} holds Lease {lease_name}) to renew "
              f"{', '.join(map(str, existing))}", flush=True)
        pending = list(never)
        for ref in existing:
            if force.wait_for_renewal(runtime.deps.secrets, ref, before[ref], timeout):
                print(f"{ref}: renewed by the controller", flush=True)
            else:
                print(f"{ref}: the controller did not renew it within {timeout:g} s; "
                      "renewing here", flush=True)
                pending.append(ref)
    if pending:
        namespaces = sorted({r.namespace for r in pending})
        report = serve_and_run(config, api, shared_tokens or holder is not None,
                               lambda rt: run_pass(rt.deps, namespaces, progress=progress,
                                                   only=pending, requested=now),
                               controller_answers=holder is not None)
        if report is None:
            return False
        for ref in pending:
            ok, message = force.describe(report, ref)
            print(printable(f"{ref}: {'renewed' if ok else 'FAILED'}: {message}"), flush=True)
            failed += 0 if ok else 1
    return not failed
