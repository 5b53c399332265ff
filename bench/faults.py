"""Fault suite with figures: each fault injected while `certbotk8s controller` issues a burst.

For every fault: a fresh namespace, a fresh Lease, the controller(s) started, `--certs` one-host
Ingresses created, the fault injected while they are being issued (or before, for the CA being
down), then cleared. Prints one JSON row per fault:

- certificates_expected / certificates_written, secrets_lost (expected but never written),
- duplicate_certificates (certificates written beyond the first per Secret, from the API
  server's replay of every write to the namespace's Secrets since the burst began:
  tests/lab/replay.py), replay_gaps (times an API server restart made the replay resume from a
  list: a certificate written and replaced within such a gap alone is not seen),
- orders (newOrder 201 across replicas) and extra_orders (orders - certificates),
- seconds_to_last_certificate: from the fault clearing to the last Secret seen (admin poll),
- cause: what named the cause while the fault lasted: Event reasons, metrics and `/readyz` as
  sampled from the controller during the fault, `certbotk8s status` run during it;
- lease_events: the controller's own Event reasons on its Lease (after the fault, too).

Faults: pebble-restart (the CA forgets accounts and orders), pebble-down (stopped, then
started), apiserver-down-30s, etcd-restart (stopped ~15 s, then started), leader-cut-off (the
leader reaches the API server through a proxy that is closed; a second replica takes over),
bind-down (DNS-01 certificates;
the lab's BIND, their RFC 2136 update server and resolver, stopped for 10 s as they are
created), bind-down-http01
(HTTP-01 certificates; BIND stopped for 5 s: Pebble and the self-check cannot resolve the hosts).

Needs the lab (lab/up) and nothing else using its HTTP-01 port. Usage:
  .venv/bin/python bench/faults.py [--certs 30] [--only pebble-restart,...] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s  # noqa: E402
from kubernetes.client import ApiClient  # noqa: E402

from certbotk8s.adapters.kube.client import failing_readiness_checks  # noqa: E402
from certbotk8s.adapters.kube.sources import load_api_client  # noqa: E402
from tests.lab.conftest import RBAC_MANIFEST, Lab, apply_manifest, read_lab_env  # noqa: E402
from tests.lab.controllers import (  # noqa: E402
    ControllerProcess,
    api_port,
    controller_config,
    free_port,
    through_proxy,
)
from tests.lab.replay import CertificateWrites  # noqa: E402
from tests.lab.tcpproxy import TcpProxy  # noqa: E402

FAULTS = ("pebble-restart", "pebble-down", "apiserver-down-30s", "etcd-restart",
          "leader-cut-off", "bind-down", "bind-down-http01")


def log(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fault(action: str, name: str) -> None:
    subprocess.run([str(ROOT / "lab" / "fault"), action, name], check=True, timeout=180,
                   capture_output=True)


class Burst:
    """Creates the Ingresses and notes when each Secret first appears (admin poll, 50 ms)."""

    def __init__(self, api: ApiClient, namespace: str, count: int, zone: str,
                 lab: Lab, challenge: str = "http-01") -> None:
        self.api, self.namespace, self.count, self.lab = api, namespace, count, lab
        self.annotations = {"certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": challenge}
        self.names = [f"f{i:03d}" for i in range(count)]
        self.hosts = {n: f"{n}-{uuid.uuid4().hex[:8]}.{zone}" for n in self.names}
        self.seen: dict[str, float] = {}
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def create(self) -> None:
        net: Any = k8s.NetworkingV1Api(self.api)
        for name in self.names:
            net.create_namespaced_ingress(self.namespace, {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "annotations": self.annotations},
                "spec": {"tls": [{"hosts": [self.hosts[name]], "secretName": f"{name}-tls"}],
                         "defaultBackend": {"service": {"name": "web",
                                                        "port": {"number": 80}}}}})

    def start(self) -> Burst:
        # Every write from now on is followed (a watch replayed every 2 s from the last version
        # seen, so an API server restart loses at most the gap it makes).
        core: Any = k8s.CoreV1Api(self.api)
        since = core.list_namespaced_secret(self.namespace).metadata.resource_version
        self.writes = CertificateWrites(self.api, self.namespace, since)
        self._thread.start()
        self._follower.start()
        return self

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.writes.follow()
            except Exception:  # the API server may be the fault
                self._stop.wait(0.2)

    def _poll(self) -> None:
        core: Any = k8s.CoreV1Api(self.api)
        while not self._stop.is_set():
            try:
                listed = core.list_namespaced_secret(self.namespace, _request_timeout=5)
            except Exception:  # the API server may be the fault
                self._stop.wait(0.2)
                continue
            now = time.monotonic()
            for s in listed.items:
                name = s.metadata.name.removesuffix("-tls")
                if s.type == "kubernetes.io/tls" and name not in self.seen:
                    self.seen[name] = now
            if len(self.seen) >= self.count:
                return
            self._stop.wait(0.05)

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.seen) >= count

    def stop(self) -> None:
        self._stop.set()
        if self._follower.is_alive():
            self._follower.join()

    def duplicates(self) -> tuple[int, int]:
        """Certificates written beyond the first per Secret (every write the API server
        replayed since `start`), and the gaps an API server restart made (filled by a list)."""
        self.writes.follow()  # what came after the follower's last look
        return (sum(len(serials) - 1 for serials in self.writes.written.values()),
                self.writes.relists)


def reasons(api: ApiClient, namespaces: list[str]) -> dict[str, int]:
    core: Any = k8s.CoreV1Api(api)
    out: dict[str, int] = {}
    for ns in namespaces:
        for e in core.list_namespaced_event(ns).items:
            if e.type == "Warning":
                out[e.reason] = out.get(e.reason, 0) + (e.count or 1)
    return out


def acme_count(ctl: ControllerProcess, endpoint: str, status: str | None = None) -> float:
    try:
        return ctl.acme(endpoint, status)
    except OSError:  # the process is gone
        return 0.0


class Run:
    def __init__(self, lab: Lab, api: ApiClient, certs: int, log_dir: Path) -> None:
        self.lab, self.api, self.certs, self.log_dir = lab, api, certs, log_dir

    def controller(self, lab: Lab, name: str, lease: str, **http01: object) -> ControllerProcess:
        config = controller_config(self.lab, self.log_dir, name, **http01)
        ctl = ControllerProcess(lab, config, free_port(), lease, name, self.log_dir).start()
        ctl.wait_ready(60)
        return ctl

    def row(self, fault_name: str, inject: Callable[[Burst, list[ControllerProcess]], str],
            replicas: Callable[[str], list[ControllerProcess]] | None = None) -> dict[str, Any]:
        namespace = f"fault-{fault_name}-{uuid.uuid4().hex[:6]}"
        core: Any = k8s.CoreV1Api(self.api)
        core.create_namespace({"metadata": {"name": namespace}})
        lease = f"fault-{uuid.uuid4().hex[:8]}"
        ctls = (replicas(lease) if replicas is not None
                else [self.controller(self.lab, f"{fault_name}-ctl", lease)])
        try:
            deadline = time.monotonic() + 30
            while not any(c.is_leader() for c in ctls) and time.monotonic() < deadline:
                time.sleep(0.05)
            burst = Burst(self.api, namespace, self.certs, self.lab["DNS_ZONE"],
                          self.lab, "dns-01" if fault_name == "bind-down" else "http-01"
                          ).start()
            log(f"{fault_name}: injecting")
            cause = inject(burst, ctls)
            cleared = time.monotonic()
            log(f"{fault_name}: cleared; waiting for {self.certs} certificates")
            burst.wait(self.certs, 120)
            burst.stop()
            duplicates, gaps = burst.duplicates()
            written = len(burst.seen)
            last = max(burst.seen.values()) if burst.seen else cleared
            orders = sum(acme_count(c, "newOrder", "201") for c in ctls)
            return {
                "fault": fault_name,
                "certificates_expected": self.certs,
                "certificates_written": written,
                "secrets_lost": self.certs - written,
                "duplicate_certificates": duplicates,
                "replay_gaps": gaps,
                "orders": int(orders),
                "extra_orders": int(orders) - written,
                "seconds_to_last_certificate": round(max(0.0, last - cleared), 2),
                "cause": cause,
                # The controller's own Events, on its Lease (LeaderElection, and
                # ApiServerUnreachable once it could tell).
                "lease_events": sorted({e.split(":", 1)[0] for e in lease_events(self.api,
                                                                                 lease)}),
                "warnings": reasons(self.api, [namespace, "certbotk8s"]),
            }
        finally:
            for c in ctls:
                c.stop()


def _wait_count(burst: Burst, count: int) -> None:
    burst.wait(count, 60)


def pebble_restart(burst: Burst, ctls: list[ControllerProcess]) -> str:
    burst.create()
    _wait_count(burst, burst.count // 3)
    fault("restart", "pebble")
    return "AccountRegisteredAgain Event, certbotk8s_acme_account_recoveries_total"


def pebble_down(burst: Burst, ctls: list[ControllerProcess]) -> str:
    fault("stop", "pebble")
    try:
        burst.create()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = ctls[0].value("certbotk8s_acme_ca_waiting_certificates", issuer="pebble")
            if waiting is not None and waiting >= burst.count:
                break
            time.sleep(0.1)
        tried = acme_count(ctls[0], "newOrder")
        return (f"CaUnavailable Events, certbotk8s_acme_ca_up=0 with {waiting} waiting; "
                f"newOrder attempts while down: {int(tried)}")
    finally:
        fault("start", "pebble")


class CauseWatch:
    """Samples what a replica shows while a fault lasts (metrics, /readyz), off the bench's
    thread: what an operator would have seen, not what the bench knows."""

    def __init__(self, ctl: ControllerProcess) -> None:
        self.ctl = ctl
        self.unreachable = 0.0  # longest certbotk8s_kube_api_unreachable_seconds seen
        self.readyz = ""  # the last /readyz line naming the API server down
        self.stepped_down = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CauseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                seconds = self.ctl.value("certbotk8s_kube_api_unreachable_seconds") or 0.0
                self.stepped_down |= bool(self.ctl.value("certbotk8s_leadership_lost_total"))
                if seconds:  # the latest line: the API server's own diagnosis comes later
                    self.readyz = next((line for line in self.ctl.get("/readyz")[1].splitlines()
                                        if "unreachable" in line), self.readyz)
            except OSError:
                continue
            self.unreachable = max(self.unreachable, seconds)

    def summary(self) -> str:
        parts = [f"kube_api_unreachable_seconds up to {self.unreachable:.0f}"
                 if self.unreachable else "kube_api_reachable stayed 1"]
        if self.readyz:
            parts.append(f"/readyz: {self.readyz!r}")
        if self.stepped_down:
            parts.append("leadership_lost_total +1")
        return "; ".join(parts)


def lease_events(api: ApiClient, lease: str) -> list[str]:
    """The controller's own Events (on its Lease), as `Reason: message`."""
    core: Any = k8s.CoreV1Api(api)
    listed = core.list_namespaced_event("certbotk8s",
                                        field_selector=f"involvedObject.name={lease}")
    return [f"{e.reason}: {e.message}" for e in listed.items]


def status_line(lab: Lab) -> str:
    """What `certbotk8s status` prints (last line) and its exit code, right now."""
    done = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "status"],
                          env=dict(os.environ, KUBECONFIG=lab["KUBECONFIG"],
                                   CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"]),
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"status rc={done.returncode}: {lines[-1] if lines else ''}"


def apiserver_down(burst: Burst, ctls: list[ControllerProcess]) -> str:
    burst.create()
    _wait_count(burst, burst.count // 3)
    with CauseWatch(ctls[0]) as watch:
        fault("stop", "kube-apiserver")
        time.sleep(5)
        status = status_line(burst.lab)
        time.sleep(25)  # the fault itself: 30 s without an API server
        fault("start", "kube-apiserver")
    return f"while down: {watch.summary()}; {status}"


def etcd_restart(burst: Burst, ctls: list[ControllerProcess]) -> str:
    burst.create()
    _wait_count(burst, burst.count // 3)
    with CauseWatch(ctls[0]) as watch:
        fault("stop", "etcd")
        try:
            time.sleep(5)
            status = status_line(burst.lab)
            time.sleep(max(0.0, 15 - 5 - 4))  # the fault itself: ~15 s without etcd
        finally:
            fault("start", "etcd")
    # The fault clears when the API server can use etcd again (its readiness says so), not when
    # etcd's port opens: the API server's etcd client reconnects with a backoff of its own, and
    # no controller can write anything before that.
    started = time.monotonic()
    while failing_readiness_checks(burst.api) != [] and time.monotonic() - started < 120:
        time.sleep(0.1)
    return (f"while down: {watch.summary()}; {status}; API server ready "
            f"{time.monotonic() - started:.1f}s after etcd started")


def bind_down(burst: Burst, ctls: list[ControllerProcess]) -> str:
    # BIND goes down before the burst (like pebble-down): the controller issues 30 DNS-01
    # certificates in ~3 s here, so a fault injected after the first third met no order.
    tried = acme_count(ctls[0], "newOrder")
    fault("stop", "named")
    try:
        burst.create()
        end = time.monotonic() + 10  # the fault itself
        seen_down = waiting = 0.0
        while time.monotonic() < end:
            if ctls[0].value("certbotk8s_dns_provider_up", provider="lab-bind") == 0:
                seen_down = 1
                waiting = max(waiting, ctls[0].value("certbotk8s_dns_waiting_certificates",
                                                     provider="lab-bind") or 0)
            time.sleep(0.1)
        tried = acme_count(ctls[0], "newOrder") - tried
    finally:
        fault("start", "named")
    return (f"DnsUnavailable Events, certbotk8s_dns_provider_up=0 seen: {bool(seen_down)}, "
            f"up to {int(waiting)} waiting; newOrder attempts while down: {int(tried)}")


def bind_down_http01(burst: Burst, ctls: list[ControllerProcess]) -> str:
    burst.create()
    _wait_count(burst, burst.count // 3)
    fault("stop", "named")
    time.sleep(5)  # the fault itself
    fault("start", "named")
    return ("self-checks wait; a validation the CA failed while the lookup gets no answer: "
            "DnsUnavailable on the HTTP-01 sources while it lasts (no IssuanceFailed)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--certs", type=int, default=30)
    parser.add_argument("--only", default=",".join(FAULTS))
    parser.add_argument("--log-dir", default="/tmp/certbotk8s-faults")
    args = parser.parse_args()
    env_path = Path(os.environ.get("CERTBOTK8S_LAB_ENV", ROOT / ".lab" / "env"))
    lab = Lab(read_lab_env(env_path))
    admin = load_api_client(lab["KUBECONFIG"])
    apply_manifest(admin, RBAC_MANIFEST)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run = Run(lab, admin, args.certs, log_dir)
    proxy = TcpProxy(api_port(lab))

    def leader_replicas(lease: str) -> list[ControllerProcess]:
        proxy.open()
        a = run.controller(through_proxy(lab, proxy, log_dir),
                           "leader-cut-off-a", lease, port=lab.http01_port + 1)
        deadline = time.monotonic() + 30
        while not a.is_leader() and time.monotonic() < deadline:
            time.sleep(0.05)
        b = run.controller(lab, "leader-cut-off-b", lease)
        return [a, b]

    def leader_cut(burst: Burst, ctls: list[ControllerProcess]) -> str:
        burst.create()
        _wait_count(burst, burst.count // 3)
        with CauseWatch(ctls[0]) as watch:
            proxy.close()
            deadline = time.monotonic() + 60
            while not ctls[1].is_leader() and time.monotonic() < deadline:
                time.sleep(0.05)
            took = [e for e in lease_events(run.api, ctls[0].lease)
                    if e.startswith("LeaderElection") and ctls[0].identity in e]
        return (f"while cut off: Event {took[-1] if took else 'none'!r}; old leader: "
                f"{watch.summary()}")

    plans: dict[str, tuple[Callable[[Burst, list[ControllerProcess]], str],
                           Callable[[str], list[ControllerProcess]] | None]] = {
        "pebble-restart": (pebble_restart, None),
        "pebble-down": (pebble_down, None),
        "apiserver-down-30s": (apiserver_down, None),
        "etcd-restart": (etcd_restart, None),
        "leader-cut-off": (leader_cut, leader_replicas),
        "bind-down": (bind_down, None),
        "bind-down-http01": (bind_down_http01, None),
    }
    failed = False
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        inject, replicas = plans[name]
        started = datetime.now(UTC)
        row = run.row(name, inject, replicas)
        row["started"] = started.isoformat(timespec="seconds")
        print(json.dumps(row), flush=True)
        failed |= row["secrets_lost"] > 0 or row["duplicate_certificates"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
