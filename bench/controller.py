"""Benchmark `certbotk8s controller`: Ingress -> Secret latency, throughput, memory.

Runs `certbotk8s controller` as a subprocess (the controller's kubeconfig, bound by
manifests/base/rbac.yaml) against the lab (lab/up: Pebble with PEBBLE_VA_NOSLEEP=1, BIND,
kube-apiserver). Prints one JSON document:

- latency: an annotated one-host Ingress created -> its Secret exists (admin watch), N runs;
- throughput: 200 one-host Ingresses created in parallel -> the 200th Secret exists;
- memory: VmRSS / VmHWM with 10,000 managed Secrets (self-signed, pre-created, controller
  restarted so its label-selected informer lists them all);
- unrelated Secrets: VmRSS before/after adding unlabelled 1 MiB Secrets in another namespace;
- renew --once: wall seconds of `certbotk8s renew --once` over the latency namespace with nothing
  due (the whole process: imports, one pass), and of its imports alone (`-X importtime`).

Latency and throughput are measured `--repeat` times (default 3) in one controller process;
each figure is the median of the repeats, and its noise the spread of the repeats. `guard`
compares every figure with the last accepted one in bench/baseline.json (key
`controller/<challenge>`; bench/guard.py): the ratio to it, and `regressed` when it is worse by
more than the noise of either measurement (at least 5 %). `--accept` stores this run's figures
as the new baseline.

Which object each write went to and what it changed: start the lab with `LAB_AUDIT=1` and run
bench/audit_writes.py over a burst's `started_at` .. `ended_at` (in the JSON).

The controller serves HTTP-01 on the lab's port (5002 + LAB_PORT_OFFSET, HTTP01_PORT in
.lab/env), so only one may run per lab: the script waits for the port to be free. Objects it
creates are deleted at the end (the lab has no namespace controller, so the namespaces stay).

Usage: .venv/bin/python bench/controller.py [--runs 25] [--burst 200] [--managed 10000]
                                            [--unrelated 300] [--log /tmp/bench-controller.log]
                                            [--repeat 3] [--challenge dns-01] [--accept]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes.client import ApiClient  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from bench import guard  # noqa: E402
from certbotk8s.adapters.kube.sources import load_api_client  # noqa: E402
from certbotk8s.core.model import (  # noqa: E402
    CertificateSpec,
    ChallengeType,
    DesiredCertificate,
    KeyType,
    ObjectRef,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.pki import certs  # noqa: E402
from certbotk8s.core.state import secret_meta  # noqa: E402
from tests.lab.conftest import (  # noqa: E402
    LAB_RBAC_MANIFEST,
    RBAC_MANIFEST,
    apply_manifest,
    read_lab_env,
)

TARGETS = {"latency_median_s": 0.25, "throughput_certs_per_s": 15.0,
           "rss_10k_managed_mb": 150.0, "rss_change_unrelated_mb": 10.0}
MB = 1_000_000
MANAGED = f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}"
BENCH_LABEL = "certbotk8s.io/bench"


def now_s() -> float:
    return time.perf_counter()


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the controller process -----------------------------------------------------------------


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM of `pid` in MB (10^6 bytes)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) * 1024 / MB, 1)
    return out


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class PortTaken(Exception):
    """The controller could not bind the HTTP-01 port."""


class ControllerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, http01_port: int) -> None:
        self.env = env
        self.log_path = log_path
        self.http01_port = http01_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.log_offset = 0
        self.bind_races = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, label: str, port_wait: float = 900.0) -> dict[str, float]:
        """Start, wait for /readyz and leadership; seconds to each. Another agent may take
        the HTTP-01 port between our check and the bind: then wait and try again."""
        deadline = time.monotonic() + port_wait
        while True:
            try:
                return self._start(label, deadline)
            except PortTaken:
                self.bind_races += 1
                log(f"port {self.http01_port} taken while starting; retrying")
                time.sleep(5)

    def _start(self, label: str, deadline: float) -> dict[str, float]:
        while port_busy(self.http01_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.http01_port} stayed busy (another controller?)")
            log(f"port {self.http01_port} busy (another agent?); waiting")
            time.sleep(10)
        self.metrics_port = free_port()
        cmd = [str(ROOT / ".venv" / "bin" / "certbotk8s"),
               "--kubeconfig", self.env["CONTROLLER_KUBECONFIG"],
               "--config", self.env["CERTBOTK8S_CONFIG"], "controller",
               "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
               "--lease-name", "certbotk8s-bench", "--lease-duration", "3",
               "--identity", f"bench-{label}-{os.getpid()}"]
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as f:
            f.write(f"\n===== bench: controller start ({label}) {datetime.now(UTC)} =====\n"
                    .encode())
        out = self.log_path.open("ab")
        started = now_s()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out.close()
        base = f"http://127.0.0.1:{self.metrics_port}"
        ready_s = leader_s = None
        while now_s() - started < 300:
            if self.proc.poll() is not None:
                if time.monotonic() < deadline and b"Address already in use" in \
                        self.log_path.read_bytes()[self.log_offset:]:
                    raise PortTaken()
                raise RuntimeError(f"controller exited with {self.proc.returncode} "
                                   f"(see {self.log_path})")
            if ready_s is None and http_get(base + "/readyz")[0] == 200:
                ready_s = now_s() - started
            if ready_s is not None:
                code, text = http_get(base + "/metrics")
                if code == 200 and metric(text, "certbotk8s_leader") == 1:
                    leader_s = now_s() - started
                    break
            time.sleep(0.05)
        if ready_s is None or leader_s is None:
            raise RuntimeError("controller not ready/leading within 300 s")
        return {"seconds_to_ready": round(ready_s, 2), "seconds_to_leader": round(leader_s, 2)}

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)[1]

    def memory(self) -> dict[str, float]:
        return proc_status(self.pid)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("controller ignored SIGTERM for 30 s: SIGKILL")
            self.proc.kill()
            return self.proc.wait(timeout=10)


# --- kube helpers ---------------------------------------------------------------------------


class SecretWatch:
    """Admin watch on one namespace's Secrets: perf_counter() when each name first appeared."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._response: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="secret-watch")

    def start(self) -> SecretWatch:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("secret watch did not start")
        return self

    def _run(self) -> None:
        core: Any = k8s.CoreV1Api(self.api)
        version = core.list_namespaced_secret(self.namespace).metadata.resource_version
        while not self._stop.is_set():
            raw = core.list_namespaced_secret(
                self.namespace, watch=True, resource_version=version, timeout_seconds=600,
                allow_watch_bookmarks=True, _preload_content=False)
            self._response = raw
            self._ready.set()
            pending = b""
            try:
                for chunk in raw.stream(1024):
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        event = json.loads(line)
                        meta = event.get("object", {}).get("metadata", {})
                        version = meta.get("resourceVersion", version)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            with self.cond:
                                self.seen.setdefault(meta["name"], now_s())
                                self.cond.notify_all()
            except Exception:
                if self._stop.is_set():
                    return
            finally:
                raw.release_conn()

    def wait_for(self, names: Iterable[str], timeout: float) -> dict[str, float]:
        names = list(names)
        deadline = now_s() + timeout
        with self.cond:
            while not all(n in self.seen for n in names):
                left = deadline - now_s()
                if left <= 0:
                    break
                self.cond.wait(left)
            return {n: self.seen[n] for n in names if n in self.seen}

    def stop(self) -> None:
        self._stop.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.shutdown()


def create_namespace(api: ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={BENCH_LABEL: "true"})))
    return name


CHALLENGE = {"challenge": "http-01"}  # --challenge: what every benched Ingress asks for


def ingress_body(name: str, host: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "labels": {BENCH_LABEL: "true"},
                     "annotations": {"certbotk8s.io/enabled": "true",
                                     "certbotk8s.io/challenge": CHALLENGE["challenge"]}},
        "spec": {"tls": [{"hosts": [host], "secretName": secret}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }


def create_ingress(api: ApiClient, namespace: str, body: dict[str, Any]) -> None:
    networking: Any = k8s.NetworkingV1Api(api)
    networking.create_namespaced_ingress(namespace, body, _preload_content=False)


def create_secret(api: ApiClient, namespace: str, body: dict[str, Any]) -> None:
    for attempt in range(5):
        try:
            core: Any = k8s.CoreV1Api(api)
            core.create_namespaced_secret(namespace, body, _preload_content=False,
                                          _request_timeout=60)
            return
        except ApiException as e:
            if e.status == 409:
                return
            if e.status not in (429, 500, 503, 504) or attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


def parallel(fn: Callable[[int], None], count: int, threads: int) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(fn, i) for i in range(count)]:
            f.result()


def delete_in(api: ApiClient, namespace: str, *, ingresses: bool = False,
              label_selector: str | None = None) -> None:
    """Delete (as collections) the bench's objects of one namespace; never fails the run."""
    try:
        if ingresses:
            k8s.NetworkingV1Api(api).delete_collection_namespaced_ingress(
                namespace, _request_timeout=300)
        k8s.CoreV1Api(api).delete_collection_namespaced_secret(
            namespace, label_selector=label_selector, _request_timeout=600)
    except Exception as e:
        log(f"cleanup of {namespace} failed: {e}")


def etcd_endpoint(env: dict[str, str]) -> str:
    """The lab's etcd client URL: from .lab/env, else its port shifted by LAB_PORT_OFFSET
    (a lab started before lab/kube.sh wrote KUBE_ETCD_ENDPOINT)."""
    offset = int(os.environ.get("LAB_PORT_OFFSET") or 0)
    return env.get("KUBE_ETCD_ENDPOINT") or f"http://127.0.0.1:{12379 + offset}"


def etcd_status(endpoint: str) -> dict[str, int]:
    """dbSize and quota from etcd's gRPC gateway (`endpoint`: `etcd_endpoint`)."""
    try:
        req = urllib.request.Request(f"{endpoint}/v3/maintenance/status", data=b"{}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            data = json.loads(r.read())
        return {"db_size": int(data["dbSize"]), "db_in_use": int(data.get("dbSizeInUse", 0)),
                "quota": int(data.get("dbSizeQuota", 0))}
    except (OSError, ValueError, KeyError):
        return {}


# --- self-signed certificates ---------------------------------------------------------------


def self_signed(key: ec.EllipticCurvePrivateKey, host: str, now: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=89))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def managed_secret_bodies(namespace: str, count: int, distinct: int
                          ) -> Callable[[int], dict[str, Any]]:
    """Secret i of `count`, holding one of `distinct` certificates (one shared key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    now = datetime.now(UTC)
    prepared = []
    for j in range(distinct):
        host = f"mem-{j}-{uuid.uuid4().hex[:6]}.certbotk8s.test"
        crt = self_signed(key, host, now)
        info = certs.certificate_info(crt)
        prepared.append((host, crt, info))
    b64_key = base64.b64encode(key_pem).decode()

    def body(i: int) -> dict[str, Any]:
        host, crt, info = prepared[i % distinct]
        name = f"mem-{i:05d}"
        desired = DesiredCertificate(
            secret=SecretRef(namespace, name),
            spec=CertificateSpec(hosts=(host,), issuer="pebble",
                                 challenge=ChallengeType.HTTP01, dns_provider=None,
                                 key_type=KeyType.ECDSA_P256, profile=None, renew_before=None),
            source=ObjectRef("networking.k8s.io/v1", "Ingress", namespace, f"src-{i:05d}"),
            source_kind=SourceKind.INGRESS,
        )
        meta = secret_meta.build_secret_metadata(desired, info, now)
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": name, "labels": {**meta.labels, BENCH_LABEL: "true"},
                             "annotations": meta.annotations},
                "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": b64_key}}

    return body


# --- measurements ---------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def measure_latency(api: ApiClient, namespace: str, runs: int) -> dict[str, Any]:
    watch = SecretWatch(api, namespace).start()
    seconds: list[float] = []
    timeouts = 0
    try:
        for i in range(runs):
            name = f"lat-{i}"
            host = f"lat-{uuid.uuid4().hex[:12]}.certbotk8s.test"
            create_ingress(api, namespace, ingress_body(name, host, f"{name}-tls"))
            created = now_s()
            got = watch.wait_for([f"{name}-tls"], timeout=60)
            if not got:
                timeouts += 1
                log(f"latency run {i}: no Secret within 60 s")
                continue
            seconds.append(got[f"{name}-tls"] - created)
            time.sleep(0.2)  # let the controller settle (Events, routing cleanup)
    finally:
        watch.stop()
    return {
        "runs": runs, "timeouts": timeouts,
        "median_s": round(statistics.median(seconds), 4) if seconds else None,
        "p95_s": round(pct(seconds, 0.95), 4) if seconds else None,
        "min_s": round(min(seconds), 4) if seconds else None,
        "max_s": round(max(seconds), 4) if seconds else None,
        "all_s": [round(s, 3) for s in seconds],
    }


def cpu_seconds(controller: int) -> dict[str, float]:
    """CPU time used so far by each lab process and the controller (`controller`: its pid;
    other agents' controllers on the machine are not ours), user + system."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    pids = {path.stem: int(path.read_text()) for path in (ROOT / ".lab" / "pids").glob("*.pid")}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = next((n for n, pid in pids.items() if pid == int(proc.name)), None)
        if name is None and int(proc.name) == controller and cmd:
            name = "controller"
        if name is not None:
            used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def measure_throughput(api: ApiClient, namespace: str, count: int, threads: int,
                       controller: int) -> dict[str, Any]:
    watch = SecretWatch(api, namespace).start()
    cpu_before = cpu_seconds(controller)
    hosts = [f"tp-{uuid.uuid4().hex[:12]}.certbotk8s.test" for _ in range(count)]
    bodies = [ingress_body(f"tp-{i}", hosts[i], f"tp-{i}-tls") for i in range(count)]
    try:
        started_at = datetime.now(UTC)
        first = now_s()
        parallel(lambda i: create_ingress(api, namespace, bodies[i]), count, threads)
        created = now_s() - first
        got = watch.wait_for([f"tp-{i}-tls" for i in range(count)], timeout=600)
    finally:
        watch.stop()
    cpu_after = cpu_seconds(controller)
    times = sorted(t - first for t in got.values())
    done = len(times)
    total = times[-1] if done == count else None
    return {
        "ingresses": count, "create_threads": threads, "namespace": namespace,
        "started_at": started_at.isoformat(),  # bench/audit_writes.py --since
        "seconds_creating_ingresses": round(created, 2),
        "secrets_ready": done,
        "first_secret_s": round(times[0], 2) if times else None,
        "half_secrets_s": round(times[count // 2 - 1], 2) if done >= count // 2 else None,
        "seconds_to_last_secret": round(total, 2) if total else None,
        "certs_per_second": round(count / total, 2) if total else None,
        # where the machine's 2 cores went during the burst
        "cpu_seconds_by_process": {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
                                   for name in sorted(cpu_after)},
    }


WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
_REQUEST_LINE = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$', re.MULTILINE)


def api_requests(api: ApiClient) -> Counter[tuple[str, str]]:
    """The API server's own count of requests served so far, by (verb, resource)."""
    params = api.param_serialize(method="GET", resource_path="/metrics",
                                 header_params={"Accept": "text/plain"},
                                 auth_settings=["BearerToken"])
    text = api.call_api(*params).response.data.decode()
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in _REQUEST_LINE.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(fields.get("verb", ""), fields.get("resource", ""))] += int(float(value))
    return counts


def per_certificate(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]],
                    certificates: int) -> dict[str, Any]:
    """The controller's API requests per certificate over a burst, by verb and resource, and
    its writes (the bench's own Ingress creates and every replica's Lease renewals left out;
    the controller's HTTP-01 routing Ingresses count)."""
    delta = {key: after[key] - before[key] for key in after if after[key] > before[key]}
    delta[("POST", "ingresses")] = delta.get(("POST", "ingresses"), 0) - certificates  # ours
    delta = {key: n for key, n in delta.items() if n > 0}
    leases = sum(n for (verb, resource), n in delta.items() if resource == "leases")
    writes = sum(n for (verb, resource), n in delta.items()
                 if verb in WRITE_VERBS and resource != "leases")
    return {
        "api_writes_per_certificate": round(writes / certificates, 2),
        "api_requests_per_certificate": round(
            (sum(delta.values()) - leases) / certificates, 2),
        "by_verb_and_resource": {f"{verb} {resource}": round(n / certificates, 2)
                                 for (verb, resource), n in sorted(delta.items())
                                 if resource != "leases"},
    }


def wait_quiet(ctl: ControllerProcess, seconds: float = 3.0, limit: float = 30.0) -> None:
    """Wait until the reconcile counter stops moving for `seconds` and every certificate
    record is written (they are written behind, some held up to 10 s for the record's next
    change), at most `limit`: a hot reconcile loop never settles."""
    end = now_s() + limit
    last, since = None, now_s()
    while now_s() < end:
        text = ctl.metrics()
        count = metric(text, "certbotk8s_reconcile_duration_seconds_count")
        if count != last:
            last, since = count, now_s()
        elif now_s() - since >= seconds and not metric(text, "certbotk8s_records_unsaved"):
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--managed", type=int, default=10_000)
    parser.add_argument("--unrelated", type=int, default=1000,
                        help="1 MiB unlabelled Secrets (the lab's etcd "
                             "quota is 4 GiB; lowered if it cannot hold them)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--challenge", choices=("http-01", "dns-01"), default="http-01")
    parser.add_argument("--log", default="/tmp/bench-controller.log")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["latency", "throughput", "memory", "unrelated", "renew"])
    parser.add_argument("--repeat", type=int, default=3,
                        help="latency series and bursts, each a figure's run (median, noise)")
    parser.add_argument("--renew-runs", type=int, default=3)
    parser.add_argument("--baseline", default=str(ROOT / "bench" / "baseline.json"))
    parser.add_argument("--accept", action="store_true",
                        help="store this run's figures as the new baseline")
    args = parser.parse_args()
    CHALLENGE["challenge"] = args.challenge

    env = read_lab_env(ROOT / ".lab" / "env")
    etcd = etcd_endpoint(env)
    api = load_api_client(env["KUBECONFIG"])
    apply_manifest(api, RBAC_MANIFEST)
    apply_manifest(api, LAB_RBAC_MANIFEST)  # its own Lease (`--lease-name certbotk8s-bench`)
    log_path = Path(args.log)
    log_path.write_bytes(b"")
    ctl = ControllerProcess(env, log_path, int(env["HTTP01_PORT"]))
    results: dict[str, Any] = {
        "ca": "pebble (lab, PEBBLE_VA_NOSLEEP=1)", "machine_cpus": os.cpu_count(),
        "challenge": args.challenge,
        "controller_log": str(log_path), "etcd_before": etcd_status(etcd),
    }
    cleanup: list[tuple[str, dict[str, Any]]] = []
    try:
        # -- a + b: latency and throughput ---------------------------------------------------
        if "latency" not in args.skip or "throughput" not in args.skip:
            results["start_empty"] = ctl.start("issue")
            wait_quiet(ctl)
            results["start_empty"].update(ctl.memory())
            series: list[dict[str, Any]] = []
            bursts: list[dict[str, Any]] = []
            latency_ns = None
            for repeat in range(args.repeat):
                if "latency" not in args.skip:
                    ns = create_namespace(api, "bench-lat")
                    latency_ns = latency_ns or ns
                    cleanup.append((ns, {"ingresses": True}))
                    log(f"latency {repeat + 1}/{args.repeat}: {args.runs} runs in {ns}")
                    series.append(measure_latency(api, ns, args.runs))
                if "throughput" not in args.skip:
                    ns = create_namespace(api, "bench-tp")
                    cleanup.append((ns, {"ingresses": True}))
                    log(f"throughput {repeat + 1}/{args.repeat}: {args.burst} Ingresses in {ns}")
                    wait_quiet(ctl)  # the latency series' last writes are not the burst's
                    served = api_requests(api)
                    burst = measure_throughput(api, ns, args.burst, args.threads, ctl.pid)
                    wait_quiet(ctl)  # the batched record and ledger writes land too
                    burst["ended_at"] = datetime.now(UTC).isoformat()  # audit_writes --until
                    burst.update(per_certificate(served, api_requests(api), args.burst))
                    burst["controller_cpu_s_per_certificate"] = round(
                        burst["cpu_seconds_by_process"].get("controller", 0.0) / args.burst, 4)
                    bursts.append(burst)
            if series:
                results["latency"] = combined(series, ("median_s", "p95_s", "min_s", "max_s"))
            if bursts:
                results["throughput"] = combined(bursts, (
                    "certs_per_second", "seconds_to_last_secret", "api_writes_per_certificate",
                    "api_requests_per_certificate", "controller_cpu_s_per_certificate"))
            results["after_issuing"] = ctl.memory()
            results["controller_exit_code_1"] = ctl.stop()
            if "renew" not in args.skip and latency_ns is not None:
                log(f"renew --once: {args.renew_runs} runs over {latency_ns} (nothing due)")
                results["renew_once"] = measure_renew_once(env, latency_ns, args.renew_runs)
            for ns, kw in cleanup:  # controller stopped: nothing re-issues what we delete
                delete_in(api, ns, **kw)
            cleanup.clear()

        # -- c: 10,000 managed certificates ----------------------------------------------------
        if "memory" not in args.skip or "unrelated" not in args.skip:
            mem_ns = create_namespace(api, "bench-mem")
            cleanup.append((mem_ns, {"label_selector": BENCH_LABEL}))
            count = args.managed if "memory" not in args.skip else 0
            if count:
                body = managed_secret_bodies(mem_ns, count, distinct=min(300, count))
                log(f"memory: creating {count} managed Secrets in {mem_ns}")
                t0 = now_s()
                parallel(lambda i: create_secret(api, mem_ns, body(i)), count, args.threads)
                created_s = now_s() - t0
            start = ctl.start("memory")
            mem: dict[str, Any] = {"managed_secrets": count,
                                   "seconds_creating_secrets": round(created_s, 1) if count
                                   else None, **start}
            mem["at_ready"] = ctl.memory()
            wait_quiet(ctl, seconds=5)
            text = ctl.metrics()
            mem["managed_certificates_metric"] = metric(text, "certbotk8s_managed_certificates")
            mem["after_first_reconciles"] = ctl.memory()
            mem["reconcile_seconds_sum"] = metric(text, "certbotk8s_reconcile_duration_seconds_sum")
            mem["reconcile_count"] = metric(text, "certbotk8s_reconcile_duration_seconds_count")
            results["memory_10k"] = mem

            # -- d: unrelated 1 MiB Secrets ------------------------------------------------------
            if "unrelated" not in args.skip:
                db = etcd_status(etcd)
                n = args.unrelated
                if db.get("quota"):
                    room = int((db["quota"] * 0.6 - db["db_size"]) / (1.2 * 2**20))
                    n = max(0, min(n, room))
                big_ns = create_namespace(api, "bench-big")
                cleanup.append((big_ns, {"label_selector": BENCH_LABEL}))
                before = ctl.memory()
                log(f"unrelated: creating {n} x 1 MiB Secrets in {big_ns}")
                t0 = now_s()

                def big(i: int) -> None:
                    create_secret(api, big_ns, {
                        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": f"big-{i:04d}", "labels": {BENCH_LABEL: "true"}},
                        "data": {"blob": base64.b64encode(os.urandom(2**20)).decode()}})

                parallel(big, n, min(args.threads, 8))
                created_s = now_s() - t0
                time.sleep(5)
                after = ctl.memory()
                results["unrelated_secrets"] = {
                    "count": n, "size_each_mib": 1, "requested": 1000,
                    "note": ("lowered from 1,000 to fit the lab's etcd quota "
                             "(--quota-backend-bytes in lab/kube.sh)") if n < 1000 else "",
                    "seconds_creating": round(created_s, 1),
                    "rss_before_mb": before["VmRSS"], "rss_after_mb": after["VmRSS"],
                    "rss_change_mb": round(after["VmRSS"] - before["VmRSS"], 1),
                    "vmhwm_after_mb": after["VmHWM"],
                    "etcd_after_create": etcd_status(etcd),
                }
            results["controller_exit_code_2"] = ctl.stop()
    finally:
        code = ctl.stop()
        if "controller_exit_code_final" not in results:
            results["controller_exit_code_final"] = code
        for ns, kw in cleanup:
            log(f"cleanup: {ns}")
            delete_in(api, ns, **kw)
        results["etcd_after_cleanup"] = etcd_status(etcd)
        results["http01_port_bind_races"] = ctl.bind_races

    results["guard"] = judge(results, Path(args.baseline), f"controller/{args.challenge}",
                             args.accept)
    lat = results.get("latency", {})
    tp = results.get("throughput", {})
    mem = results.get("memory_10k", {})
    un = results.get("unrelated_secrets", {})
    rss_10k = max(mem.get("after_first_reconciles", {}).get("VmHWM", 0),
                  mem.get("at_ready", {}).get("VmHWM", 0)) or None
    results["summary"] = {
        "latency_median_s": {"value": lat.get("median_s"), "target_max": 0.25,
                             "ok": _le(lat.get("median_s"), 0.25)},
        "latency_p95_s": {"value": lat.get("p95_s")},
        "throughput_certs_per_s": {"value": tp.get("certs_per_second"), "target_min": 15.0,
                                   "ok": _ge(tp.get("certs_per_second"), 15.0)},
        "peak_rss_10k_managed_mb": {"value": rss_10k, "target_max": 150.0,
                                    "ok": _le(rss_10k, 150.0)},
        "rss_change_unrelated_mb": {"value": un.get("rss_change_mb"), "target_max": 10.0,
                                    "count": un.get("count"),
                                    "ok": _lt(abs(un["rss_change_mb"]) if un else None, 10.0)},
    }
    print(json.dumps(results, indent=2))


def combined(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Several runs of one measurement as one: each of `keys` the median of the runs (with
    `<key>_runs` listing them); the rest of the median run (by the first key) kept."""
    middle = sorted(runs, key=lambda r: r.get(keys[0]) or 0.0)[len(runs) // 2]
    out = {**middle, "repeats": len(runs)}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(statistics.median(values), 4) if values else None
        out[f"{key}_runs"] = values
    return out


def measure_renew_once(env: dict[str, str], namespace: str, runs: int) -> dict[str, Any]:
    """Wall seconds of whole `certbotk8s renew --once -n NAMESPACE` processes (nothing due),
    and of the CLI's imports alone (`python -X importtime`, cumulative microseconds)."""
    exe = str(ROOT / ".venv" / "bin" / "certbotk8s")
    cmd = [exe, "--kubeconfig", env["CONTROLLER_KUBECONFIG"], "--config",
           env["CERTBOTK8S_CONFIG"], "renew", "--once", "-n", namespace]
    seconds: list[float] = []
    codes: list[int] = []
    peak = 0.0
    for _ in range(runs):
        started = now_s()
        # /usr/bin/time reports the peak RSS of the command alone (the rusage of a child of
        # this process would start from this process's own size, copied at fork).
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True,
                              text=True, check=False)
        seconds.append(round(now_s() - started, 3))
        codes.append(done.returncode)
        with contextlib.suppress(ValueError, IndexError):
            peak = max(peak, int(done.stderr.strip().splitlines()[-1]) * 1024 / MB)
    imports: list[float] = []
    python = str(ROOT / ".venv" / "bin" / "python")
    for _ in range(runs):
        out = subprocess.run([python, "-X", "importtime", "-c", "import certbotk8s.cli"],
                             capture_output=True, text=True, check=False).stderr
        last = [line for line in out.splitlines() if line.endswith("| certbotk8s.cli")]
        if last:
            imports.append(round(int(last[-1].split("|")[1]) / 1e6, 3))
    # What the load of the machine does not change: how many modules the CLI imports.
    counted = subprocess.run([python, "-c", "import sys, certbotk8s.cli; print(len(sys.modules))"],
                             capture_output=True, text=True, check=False).stdout.strip()
    return {"runs": runs, "exit_codes": codes, "median_s": statistics.median(seconds),
            "all_s": seconds, "import_median_s": statistics.median(imports) if imports else None,
            "import_all_s": imports, "modules_imported": int(counted) if counted else None,
            "peak_rss_mb": round(peak, 1)}


def figures_of(results: dict[str, Any]) -> dict[str, guard.Figure]:
    """The guarded figures of one bench run: median and noise of each."""
    out: dict[str, guard.Figure] = {}

    def add(name: str, runs: list[Any] | None) -> None:
        values = [v for v in runs or [] if v is not None]
        if values:
            out[name] = guard.summarize(values)

    lat, tp = results.get("latency", {}), results.get("throughput", {})
    add("latency_median_s", lat.get("median_s_runs"))
    add("latency_p95_s", lat.get("p95_s_runs"))
    add("throughput_certs_per_s", tp.get("certs_per_second_runs"))
    add("api_writes_per_certificate", tp.get("api_writes_per_certificate_runs"))
    add("api_requests_per_certificate", tp.get("api_requests_per_certificate_runs"))
    add("controller_cpu_s_per_certificate", tp.get("controller_cpu_s_per_certificate_runs"))
    add("rss_idle_mb", [results.get("start_empty", {}).get("VmRSS")])
    add("rss_after_issuing_mb", [results.get("after_issuing", {}).get("VmRSS")])
    mem = results.get("memory_10k", {})
    add("rss_10k_managed_mb", [max(mem.get("after_first_reconciles", {}).get("VmHWM", 0),
                                   mem.get("at_ready", {}).get("VmHWM", 0)) or None])
    renew = results.get("renew_once", {})
    add("renew_once_s", renew.get("all_s"))
    add("renew_once_import_s", renew.get("import_all_s"))
    add("renew_once_modules", [renew.get("modules_imported")])
    add("renew_once_peak_rss_mb", [renew.get("peak_rss_mb")])
    return out


def judge(results: dict[str, Any], path: Path, key: str, accept: bool) -> dict[str, Any]:
    """This run against the accepted baseline (bench/guard.py); `accept` stores it."""
    figures = figures_of(results)
    verdicts = guard.compare(figures, guard.load(path, key))
    worse = guard.regressions(verdicts)
    for line in worse:
        log(f"REGRESSION {line}")
    if accept:
        guard.save(path, key, figures, f"accepted {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        log(f"baseline {key} in {path} replaced by this run's figures")
    return {"baseline": f"{path.name}:{key}", "regressions": worse,
            "figures": {v.name: v.as_json() for v in verdicts}}


def _le(v: float | None, t: float) -> bool | None:
    return None if v is None else v <= t


def _lt(v: float | None, t: float) -> bool | None:
    return None if v is None else v < t


def _ge(v: float | None, t: float) -> bool | None:
    return None if v is None else v >= t


if __name__ == "__main__":
    main()
