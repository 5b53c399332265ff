"""Renewals in compressed time against the real lab: the controller runs with Pebble's `fast`
profile (4-minute certificates) while every managed Secret is watched; used by
tests/lab/test_renewal_compressed.py (a short run, CI) and bench/renewal_compressed.py (10 min).

What is checked (`Run.verdict`), per Secret and certificate:
- never an expired certificate in a Secret (each replaced before its notAfter, the last one
  still valid at the end);
- each replaced once due and promptly: due is its chosen moment (the one the controller kept in
  its record, or the one core.renewal.moment computes for the CA's window when it was never written)
  or its floor (1/10 of the lifetime left) when the moment lies beyond it; "promptly" is
  `slack` seconds, plus the time no controller ran around the restart;
- orders per source (from the controller's log) = renewals due, plus at most one per injected
  failure (a failed order that is resumed costs none). The failure is injected into an HTTP-01
  source about to renew; when Pebble reuses its valid authorization (PEBBLE_AUTHZREUSE=50) no
  challenge is asked and nothing fails, so another source is tried (`must_inject`: the bench
  counts a run without one as a problem);
- every drawn moment (renewed in the run or not) spread across its window (quarters);
- one Secret's window moved through Pebble's management API: renewed inside the moved window;
- a controller restart in the middle (checked: it happened and the new controller led)
  changes none of this.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.name
import dns.query
import dns.tsig
import dns.update
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.records import ROLE as RECORDS_ROLE
from certbotk8s.adapters.kube.records import ROLE_LABEL as RECORDS_ROLE_LABEL
from certbotk8s.core.model import CertificateInfo, RenewalWindow
from certbotk8s.core.pki import certs
from certbotk8s.core.renewal.ari_gate import ari_gate
from certbotk8s.core.renewal.moment import AriGate, ChosenMoment, floor_time, renewal_time
from certbotk8s.core.state import records, secret_meta

from .conftest import Lab
from .controllers import ControllerProcess, controller_config
from .records_view import CONTROLLER_NAMESPACE, record_of

PROFILE = "fast"


@dataclass
class Seen:
    """One certificate as it sat in a Secret."""

    info: CertificateInfo
    first_seen: float  # wall clock (time.time())
    moment: datetime | None = None  # the moment the controller kept in its record
    window: RenewalWindow | None = None
    # What held ARI back for it (core.renewal.ari_gate over its record: the minimum age after an ARI
    # renewal, the weekly cap), as the controller decided it.
    gate: AriGate | None = None


@dataclass
class Watched:
    certificates: list[Seen] = field(default_factory=list)


class SecretWatch:
    """Watches every managed TLS Secret of `namespaces`, and the controller's records of them
    (the kept moments), from start to stop (admin identity)."""

    def __init__(self, api: ApiClient, namespaces: set[str]) -> None:
        self._core: Any = k8s.CoreV1Api(api)
        self._namespaces = namespaces
        self.secrets: dict[str, Watched] = {}
        self._records: dict[str, dict[str, str]] = {}  # "namespace/name" -> its record
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(self._secrets_stream, self._seen),
                             daemon=True, name="secret-watch"),
            threading.Thread(target=self._run, args=(self._records_stream, self._recorded),
                             daemon=True, name="record-watch")]

    def start(self) -> SecretWatch:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _secrets_stream(self, w: Any, version: str) -> Any:
        selector = f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}"
        return w.stream(self._core.list_secret_for_all_namespaces, label_selector=selector,
                        resource_version=version, timeout_seconds=5,
                        allow_watch_bookmarks=False)

    def _records_stream(self, w: Any, version: str) -> Any:
        return w.stream(self._core.list_namespaced_secret, CONTROLLER_NAMESPACE,
                        label_selector=f"{RECORDS_ROLE_LABEL}={RECORDS_ROLE}",
                        resource_version=version, timeout_seconds=5,
                        allow_watch_bookmarks=False)

    def _run(self, stream: Callable[[Any, str], Any], seen: Callable[[Any], None]) -> None:
        version = ""
        while not self._stop.is_set():
            w = k8s_watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in stream(w, version):
                    obj = event["object"]
                    version = obj.metadata.resource_version
                    seen(obj)
                    if self._stop.is_set():
                        break
            except ApiException as e:
                if e.status == 410:
                    version = ""  # expired: list again (every object comes again as ADDED)
            finally:
                w.stop()  # type: ignore[no-untyped-call]

    def _recorded(self, shard: Any) -> None:
        """A record shard changed: the moments kept for the watched Secrets in it."""
        for key, value in (shard.data or {}).items():
            ref = records.ref_of(key)
            if ref is None or ref.namespace not in self._namespaces:
                continue
            record = records.decode(base64.b64decode(value)) or {}
            name = f"{ref.namespace}/{ref.name}"
            with self.lock:
                self._records[name] = record
                self._apply_record(name)

    def _apply_record(self, key: str) -> None:
        """The record's kept moment and ARI gate onto the certificate they are for (called
        with the lock)."""
        watched, record = self.secrets.get(key), self._records.get(key)
        if watched is None or not watched.certificates or record is None:
            return
        current = watched.certificates[-1]
        if record.get(secret_meta.SERIAL) != current.info.serial:
            return  # about the certificate before (or after) the one we hold
        moment = secret_meta.parse_moment(record)
        if moment is not None and moment.cert_id == current.info.ari_cert_id:
            current.moment, current.window = moment.at, moment.window
        current.gate = ari_gate(current.info, record)

    def _seen(self, obj: Any) -> None:
        namespace, name = obj.metadata.namespace, obj.metadata.name
        if namespace not in self._namespaces or obj.type != "kubernetes.io/tls":
            return
        crt = base64.b64decode((obj.data or {}).get("tls.crt", ""))
        if not crt:
            return
        info = certs.certificate_info(crt)
        key = f"{namespace}/{name}"
        with self.lock:
            watched = self.secrets.setdefault(key, Watched())
            if not watched.certificates or watched.certificates[-1].info.serial != info.serial:
                watched.certificates.append(Seen(info, time.time()))
            self._apply_record(key)


def nsupdate(env: dict[str, str], build: str, name: str, value: str = "") -> None:
    zone = env["DNS_ZONE"]
    keyname = dns.name.from_text(env["DNS_TSIG_NAME"])
    keyring = {keyname: dns.tsig.Key(keyname, env["DNS_TSIG_SECRET"], env["DNS_TSIG_ALGORITHM"])}
    update = dns.update.UpdateMessage(zone, keyring=keyring, keyname=keyname)
    relative = dns.name.from_text(name).relativize(dns.name.from_text(zone))
    if build == "add":
        update.add(relative, 5, "A", value)
    else:
        update.delete(relative, "A")
    port = int(env["DNS_SERVER"].rsplit(":", 1)[1])
    response = dns.query.tcp(update, "127.0.0.1", port=port, timeout=5)
    assert response.rcode() == 0


def set_window(env: dict[str, str], fullchain: bytes, start: datetime, end: datetime) -> None:
    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    answer = json.dumps({"suggestedWindow": {"start": secret_meta.format_time(start),
                                             "end": secret_meta.format_time(end)}})
    response = requests.post(f"{env['PEBBLE_MGMT']}/set-renewal-info/", json={
        "Certificate": leaf.public_bytes(serialization.Encoding.PEM).decode(),
        "ARIResponse": answer}, verify=env["ACME_CA_BUNDLE"], timeout=5)
    response.raise_for_status()


@dataclass
class Plan:
    sources: int = 30
    namespaces: int = 3
    dns01_every: int = 3  # every third source uses DNS-01
    duration: float = 600.0
    restart_at: float = 0.5  # fraction of the run
    move_window: bool = True
    inject_failure: bool = True
    must_inject: bool = False  # a run without an injected failure is a problem (the bench)
    inject_after: float = 60.0  # seconds into the run before a failure is injected
    # End before `duration` once the promises a short run checks have been shown: the restarted
    # controller led, the moved window's certificate was replaced, no injection is under way
    # (the test; the bench runs its full duration).
    end_when_shown: bool = False
    slack: float = 12.0  # seconds an order may take after the floor (lifetime/20)


@dataclass
class Run:
    plan: Plan
    started: float
    ended: float
    secrets: dict[str, Watched]
    orders: dict[str, int]
    injected: dict[str, int]
    moved: str | None
    moved_window: RenewalWindow | None
    log: Path
    restart: tuple[float, float] | None = None  # the old controller stopping .. the new started

    def _due_at(self, seen: Seen) -> tuple[datetime, datetime | None, RenewalWindow]:
        """When `seen` is due (its kept moment, capped by the floor: the floor wins "whatever
        ARI says"), the moment drawn in its window (None when the controller kept none), and
        that window. Without a kept moment: the one core.renewal.moment draws in Pebble's window
        (the whole validity for the `fast` profile), capped by the floor as well."""
        moved = self.moved_window
        if moved is not None and seen.info.ari_cert_id == moved.cert_id and seen.window != moved:
            # the kept moment was drawn in the window before the move: the one drawn in the
            # moved window decides (kept or not when the renewal came)
            return renewal_time(seen.info, None, moved, None, seen.gate).at, None, moved
        if seen.moment is not None and seen.window is not None:
            kept = ChosenMoment(seen.moment, seen.info.ari_cert_id, seen.window)
            due = renewal_time(seen.info, None, seen.window, kept, seen.gate).at
            return min(due, floor_time(seen.info)), seen.moment, seen.window
        window = RenewalWindow(seen.info.not_before, seen.info.not_after, seen.info.ari_cert_id)
        return renewal_time(seen.info, None, window, None, seen.gate).at, None, window

    def _allowed_delay(self, due: datetime, key: str, seen: Seen) -> float | None:
        """Seconds a replacement may come after it was due; None: no bound here."""
        if key in self.injected:
            return None  # its renewal failed on purpose and waits for its backoff
        if self.moved_window is not None and seen.info.ari_cert_id == self.moved_window.cert_id:
            return None  # a moment in the moved window may precede the ARI read that shows it
        slack = self.plan.slack
        if self.restart is not None:
            down_from, down_to = self.restart
            if down_from - slack <= due.timestamp() <= down_to:
                return slack + down_to - due.timestamp()  # no controller ran then
        return slack

    def verdict(self) -> tuple[dict[str, Any], list[str]]:
        """The figures (JSON) and every broken promise (empty when all hold)."""
        problems: list[str] = []
        fractions: list[float] = []
        quarters = [0, 0, 0, 0]
        renewals = expired = at_floor = 0
        late: list[float] = []
        delays: list[float] = []
        one = timedelta(seconds=1)  # whole seconds on both sides (X.509 and the annotation)
        ended = datetime.fromtimestamp(self.ended, UTC)
        for key, watched in sorted(self.secrets.items()):
            seq = watched.certificates
            if not seq:
                problems.append(f"{key}: never got a certificate")
                continue
            for seen in seq:
                # Every drawn moment counts for the spread, renewed during the run or not:
                # counting only the renewed ones would favour early draws (a late one is
                # still pending when the run ends).
                if seen.moment is not None and seen.window is not None:
                    w = seen.window
                    q = int(4 * (seen.moment - w.start) / (w.end - w.start))
                    quarters[min(3, max(q, 0))] += 1
            due = 0
            for old, new in itertools.pairwise(seq):
                renewals += 1
                at = new.info.not_before  # Pebble's issuance time of the replacement
                due_at, _, _ = self._due_at(old)
                floor = floor_time(old.info)
                at_floor += due_at == floor
                if at >= old.info.not_after:
                    expired += 1
                    problems.append(f"{key}: serial {old.info.serial} expired before its "
                                    f"replacement ({at} >= {old.info.not_after})")
                if at < due_at - one:
                    problems.append(f"{key}: serial {old.info.serial} replaced at {at}, "
                                    f"before it was due at {due_at}")
                delay = (at - due_at).total_seconds()
                delays.append(delay)
                allowed = self._allowed_delay(due_at, key, old)
                if allowed is not None and delay > allowed:
                    problems.append(f"{key}: serial {old.info.serial} replaced at {at}, "
                                    f"{delay:.0f} s after it was due at {due_at}")
                lateness = (at - floor).total_seconds()
                late.append(lateness)
                if lateness > self.plan.slack:
                    problems.append(f"{key}: serial {old.info.serial} replaced {lateness:.0f} s "
                                    f"after its floor {floor}")
                fractions.append((at - old.info.not_before) / old.info.lifetime)
                due += 1
            last = seq[-1]
            if last.info.not_after <= ended:
                expired += 1
                problems.append(f"{key}: holds an expired certificate at the end")
            last_due, _, _ = self._due_at(last)
            allowed = self._allowed_delay(last_due, key, last)
            # a renewal due well before the end must have happened
            if allowed is not None and last_due < ended - timedelta(seconds=allowed):
                problems.append(f"{key}: renewal due at {last_due} never happened")
            # The rule: orders = renewals due, plus AT MOST one per injected failure
            # (a failed order the next attempt or the next leader resumes costs none).
            least = 1 + due
            most = least + self.injected.get(key, 0)
            if not least <= self.orders.get(key, 0) <= most:
                problems.append(f"{key}: {self.orders.get(key, 0)} orders, expected "
                                f"{least}..{most} (1 issuance + {due} renewals + up to "
                                f"{self.injected.get(key, 0)} for injected failures)")
        if len(self.secrets) != self.plan.sources:
            problems.append(f"{len(self.secrets)} Secrets seen, {self.plan.sources} sources")
        drawn = sum(quarters)
        # Not clustered at window start. Uniform draws leave a quarter empty with p = 4 * 0.75^n
        # and put over half in the first with p < 1e-4 at n = 40: below that, nothing is said.
        if drawn >= 40 and (min(quarters) == 0 or quarters[0] > drawn / 2):
            problems.append(f"renewal moments not spread across the windows: {quarters}")
        if self.plan.must_inject and not self.injected:
            problems.append("no failure could be injected")
        if self.restart is None and self.plan.restart_at < 1:
            problems.append("the controller was never restarted")
        leaders = _leaders(self.log)
        if self.restart is not None and leaders < 2:
            problems.append(f"the restarted controller never led ({leaders} leaders in the log)")
        problems.extend(self._moved_window_problems(ended))
        per_source = [self.orders.get(k, 0) for k in self.secrets]
        figures: dict[str, Any] = {
            "seconds": round(self.ended - self.started),
            "sources": len(self.secrets),
            "certificate_lifetime_s": 240,
            "renewals": renewals,
            "renewals_at_floor": at_floor,  # the drawn moment lay in the last tenth
            "orders": sum(self.orders.values()),
            "orders_per_source": {"min": min(per_source, default=0),
                                  "max": max(per_source, default=0),
                                  "mean": round(sum(per_source) / max(len(per_source), 1), 2)},
            "injected_failures": sum(self.injected.values()),
            "restart_at_s": (round(self.restart[0] - self.started) if self.restart else None),
            "restart_down_s": (round(self.restart[1] - self.restart[0], 1)
                               if self.restart else None),
            "leaders": leaders,
            "renewal_fraction_earliest": round(min(fractions, default=0.0), 3),
            "renewal_fraction_latest": round(max(fractions, default=0.0), 3),
            "moments_drawn": drawn,
            "moments_in_window_quarters": quarters,
            "replaced_after_due_s": {"max": round(max(delays, default=0.0), 1),
                                     "median": round(sorted(delays)[len(delays) // 2], 1)
                                     if delays else 0.0},
            "latest_after_floor_s": round(max(late, default=0.0), 1),
            "expired": expired,
            "moved_window_secret": self.moved,
            "problems": len(problems),
        }
        return figures, problems

    def _moved_window_problems(self, ended: datetime) -> list[str]:
        """The certificate whose window was moved is replaced inside the moved window (not at
        its earlier, later moment), or not yet when the run ended before the window did."""
        if self.moved is None or self.moved_window is None:
            return []
        window = self.moved_window
        seq = self.secrets[self.moved].certificates
        index = next((i for i, c in enumerate(seq) if c.info.ari_cert_id == window.cert_id),
                     None)
        replacement = seq[index + 1] if index is not None and index + 1 < len(seq) else None
        slack = timedelta(seconds=self.plan.slack)
        if replacement is None:
            if window.end + slack < ended:
                return [f"{self.moved}: not renewed in the moved window "
                        f"{window.start} .. {window.end}"]
        elif not (window.start - timedelta(seconds=1) <= replacement.info.not_before
                  <= window.end + slack):
            return [f"{self.moved}: renewed at {replacement.info.not_before}, "
                    f"outside the moved window {window.start} .. {window.end}"]
        return []


def _replaced(seq: list[Seen], window: RenewalWindow | None) -> bool:
    """The certificate `window` is for was replaced (a later one follows it in `seq`)."""
    ids = [seen.info.ari_cert_id for seen in seq]
    return window is not None and window.cert_id in ids[:-1]


def _leaders(log: Path) -> int:
    """How many controllers took the Lease so far (each logs it once)."""
    return log.read_text(errors="replace").count(" is the leader now")


def _controller(env: dict[str, str], tmp: Path, log: Path, lease: str, port: int
                ) -> ControllerProcess:
    """The controller with the lab's config, logging to `log` (a restart appends to it)."""
    lab = Lab(env)
    return ControllerProcess(lab, controller_config(lab, tmp, "compressed"), port, lease,
                             f"compressed-{uuid.uuid4().hex[:6]}", tmp, log_path=log,
                             stop_timeout=40).start()


def run(env: dict[str, str], api: ApiClient, plan: Plan, tmp: Path, metrics_port: int,
        progress: Callable[[str], None] = lambda line: None) -> Run:
    """Create the sources, run the controller (restarted once), watch, and collect."""
    core: Any = k8s.CoreV1Api(api)
    networking: Any = k8s.NetworkingV1Api(api)
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"ct-{tag}-{i}" for i in range(plan.namespaces)]
    for ns in namespaces:
        core.create_namespace({"metadata": {"name": ns}})
    watch = SecretWatch(api, set(namespaces)).start()
    log = tmp / "controller.log"
    lease = f"compressed-{tag}"
    controller = _controller(env, tmp, log, lease, metrics_port)
    hosts: dict[str, str] = {}
    http01: list[str] = []
    for i in range(plan.sources):
        ns = namespaces[i % len(namespaces)]
        name = f"src-{i}"
        host = f"c{i}-{tag}.{env['DNS_ZONE']}"
        annotations = {"certbotk8s.io/enabled": "true", "certbotk8s.io/profile": PROFILE}
        if i % plan.dns01_every == 0:
            annotations["certbotk8s.io/challenge"] = "dns-01"
        else:
            http01.append(f"{ns}/{name}-tls")
        hosts[f"{ns}/{name}-tls"] = host
        networking.create_namespaced_ingress(ns, {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
    started = time.time()
    deadline = started + plan.duration
    restarted = moved_done = injected_done = False
    moved: str | None = None
    moved_window: RenewalWindow | None = None
    injected: dict[str, int] = {}
    injecting: tuple[str, float, str] | None = None
    tried: set[str] = set()
    restart: tuple[float, float] | None = None
    stopping = 0.0
    try:
        while time.time() < deadline:
            time.sleep(0.5)
            elapsed = time.time() - started
            if not controller.alive():
                raise AssertionError(f"controller exited:\n{log.read_text()[-3000:]}")
            if not restarted and elapsed >= plan.duration * plan.restart_at:
                progress(f"{elapsed:.0f}s: restarting the controller")
                stopping = time.time()
                controller.stop()
                controller = _controller(env, tmp, log, lease, metrics_port)
                restarted = True
            if restarted and restart is None and _leaders(log) >= 2:
                restart = (stopping, time.time())  # down until the new controller leads
                progress(f"{restart[1] - started:.0f}s: the new controller leads")
            with watch.lock:
                snapshot = {k: list(v.certificates) for k, v in watch.secrets.items()}
            now = datetime.now(UTC)
            if plan.move_window and not moved_done:
                # a certificate issued moments ago whose kept moment lies late in its life:
                # move its window to 40-70 s into its life (the controller re-reads ARI at
                # 1/10 of the lifetime, 24 s, so it sees the move before the window opens)
                for key, seq in sorted(snapshot.items()):
                    info, moment = seq[-1].info, seq[-1].moment
                    if moment is not None and moment > info.not_before + timedelta(
                            seconds=80) and now - info.not_before < timedelta(seconds=25):
                        ns, name = key.split("/")
                        crt = base64.b64decode(core.read_namespaced_secret(
                            name, ns).data["tls.crt"])
                        if certs.certificate_info(crt).serial != info.serial:
                            continue
                        start = info.not_before + timedelta(seconds=40)
                        moved_window = RenewalWindow(start, start + timedelta(seconds=30),
                                                     info.ari_cert_id)
                        set_window(env, crt, moved_window.start, moved_window.end)
                        moved, moved_done = key, True
                        progress(f"{elapsed:.0f}s: moved the ARI window of {key}")
                        break
            if (plan.inject_failure and not injected_done and injecting is None
                    and elapsed > plan.inject_after):
                # an HTTP-01 source whose renewal comes in 10-60 s: its host is pointed where
                # nothing answers, so its next order fails (self-check) and backs off
                for key in http01:
                    seq = snapshot.get(key) or []
                    if key == moved or key in tried or not seq or seq[-1].moment is None:
                        continue
                    ahead = (seq[-1].moment - now).total_seconds()
                    if 10 < ahead < 60:
                        nsupdate(env, "add", hosts[key], "127.0.0.2")
                        injecting = (key, time.time(), seq[-1].info.serial)
                        tried.add(key)
                        progress(f"{elapsed:.0f}s: injecting a failure into {key}")
                        break
            if injecting is not None:
                key, since, serial = injecting
                ns, name = key.split("/")
                secret = core.read_namespaced_secret(name, ns)
                failed = record_of(api, ns, name).get(secret_meta.FAILURES) == "1"
                # Renewed without failing: Pebble reused the host's valid authorization
                # (PEBBLE_AUTHZREUSE), so no challenge was asked; try another source.
                renewed = certs.certificate_info(
                    base64.b64decode(secret.data["tls.crt"])).serial != serial
                if failed or renewed or time.time() - since > 120:
                    nsupdate(env, "delete", hosts[key])
                    injecting = None
                    if failed:
                        injected[key], injected_done = 1, True
                    progress(f"{time.time() - started:.0f}s: failure injected: {injected}"
                             if failed else f"{time.time() - started:.0f}s: {key} renewed "
                             "without a challenge (authorization reused); trying another")
            if plan.end_when_shown and restart is not None and injecting is None and moved \
                    and _replaced(snapshot.get(moved) or [], moved_window):
                progress(f"{time.time() - started:.0f}s: every promise shown; ending early")
                break
    finally:
        if injecting is not None:
            nsupdate(env, "delete", hosts[injecting[0]])
        ended = time.time()
        controller.stop()
        watch.stop()
        for i in range(plan.sources):
            with contextlib.suppress(ApiException):
                networking.delete_namespaced_ingress(f"src-{i}",
                                                     namespaces[i % len(namespaces)])
    with watch.lock:
        secrets = dict(watch.secrets)
    return Run(plan, started, ended, secrets, controller.orders(), injected, moved,
               moved_window, log, restart)
