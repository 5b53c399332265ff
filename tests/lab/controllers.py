"""`certbotk8s controller` as a real process for lab tests and benches: its config, ports, a
proxied kubeconfig, start, readiness, metrics, log and stop, in one place."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from certbotk8s.app.metrics import CERT_LABELS, cert_label_values

from .conftest import ROOT, Lab
from .tcpproxy import TcpProxy


class ControllerProcess:
    """`certbotk8s controller` as a real process under the controller's RBAC identity.

    Logs to `log_dir/<identity>.log` unless `log_path` is given (restarts append to it)."""

    def __init__(self, lab: Lab, config: Path, metrics_port: int, lease: str, identity: str,
                 log_dir: Path, *, log_path: Path | None = None,
                 stop_timeout: float = 30, lease_duration: float = 3) -> None:
        self.lab, self.config, self.port = lab, config, metrics_port
        self.lease, self.identity = lease, identity
        self.log_path = log_path or log_dir / f"{identity}.log"
        self.stop_timeout = stop_timeout
        self.lease_duration = lease_duration
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        env = dict(os.environ, KUBECONFIG=self.lab["CONTROLLER_KUBECONFIG"],
                   CERTBOTK8S_CONFIG=str(self.config), POD_NAME=self.identity)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "certbotk8s.cli", "controller",
                 "--metrics-address", "127.0.0.1", "--metrics-port", str(self.port),
                 "--lease-name", self.lease, "--lease-duration", str(self.lease_duration),
                 "--identity", self.identity],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), self.log()
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"controller {self.identity} not ready:\n{self.log()}")

    def wait_leading(self, timeout: float = 10) -> ControllerProcess:
        """Ready, and holding the Lease (the only replica on it, or the first)."""
        self.wait_ready()
        wait_for(self.is_leader, timeout, f"{self.identity} leading")
        return self

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def value(self, name: str, /, **labels: str) -> float | None:
        """The sample with exactly these labels (`cert_labels` gives a certificate's)."""
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def acme(self, endpoint: str, status: str | None = None) -> float:
        """ACME requests to `endpoint` (and with that HTTP status) this process sent."""
        return sum(v for (name, labels), v in self.metrics().items()
                   if name == "certbotk8s_acme_requests_total"
                   and ("endpoint", endpoint) in labels
                   and (status is None or ("status", status) in labels))

    def is_leader(self) -> bool:
        return self.value("certbotk8s_leader") == 1.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def orders(self) -> dict[str, int]:
        """New orders this process placed, per Secret (`namespace/name`), from its log."""
        counts: dict[str, int] = {}
        logger = "certbotk8s.app.controller.order_runner: "
        for line in self.log_path.read_text(errors="replace").splitlines():
            if ": new order " in line and logger in line:
                key = line.split(logger, 1)[1].split(": new order")[0]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def controller_config(lab: Lab, directory: Path, name: str, **http01: object) -> Path:
    """The lab's controller config with `solver.http01` settings changed, as a file."""
    data: dict[str, Any] = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    data["solver"]["http01"].update(http01)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def through_proxy(lab: Lab, proxy: TcpProxy, directory: Path, key: str = "CONTROLLER_KUBECONFIG"
                  ) -> Lab:
    """The lab with kubeconfig `key` pointing at `proxy` (open) instead of the API server."""
    kubeconfig = yaml.safe_load(Path(lab[key]).read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = directory / f"proxied-{key.lower()}"
    path.write_text(yaml.safe_dump(kubeconfig))
    return Lab(dict(lab.env, **{key: str(path)}))


def api_port(lab: Lab) -> int:
    return int(lab["KUBE_APISERVER"].rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cert_labels(namespace: str, name: str, issuer: str) -> dict[str, str]:
    """Every label of one certificate's certbotk8s_certificate_* series (for `value`)."""
    return dict(zip(CERT_LABELS, cert_label_values((namespace, name, issuer)), strict=True))


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """`check()`'s first truthy value, polled every 50 ms; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
