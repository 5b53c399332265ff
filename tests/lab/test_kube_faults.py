"""API server faults under a running controller: watches answered 410 Gone after an API server
restart (the one restart of the lab suite), etcd away, a certificate issued while the API server
is away, and the cause in metrics, /readyz, Events and `status` while it lasts (a Secret write
answered 409: test_write_race.py)."""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.client import failing_readiness_checks
from certbotk8s.core.pki import certs
from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .controllers import (
    ControllerProcess,
    api_port,
    controller_config,
    free_port,
    through_proxy,
    wait_for,
)
from .records_view import record_of
from .replay import CertificateWrites, Expired, certificates_written
from .tcpproxy import TcpProxy
from .test_controller import _ingress
from .test_faults import fault
from .test_faults_controller import _events

pytestmark = pytest.mark.lab


@pytest.fixture
def proxied(lab: Lab, controller_api: ApiClient, tmp_path: Path) -> Iterator[tuple[Lab, TcpProxy]]:
    """The controller's identity, reaching the API server only through a proxy the test closes."""
    with TcpProxy(api_port(lab)) as proxy:
        yield through_proxy(lab, proxy, tmp_path), proxy


def _serial(secret: Any) -> str:
    return certs.certificate_info(base64.b64decode(secret.data["tls.crt"])).serial


def _certificates_written(api: ApiClient, namespace: str, name: str, since: str) -> list[str]:
    """Serials of the certificates written to Secret `name` after resourceVersion `since`."""
    return certificates_written(api, namespace, since, name).get(name, [])


def _orders_for(ctl: ControllerProcess, namespace: str, secret: str) -> int:
    return ctl.orders().get(f"{namespace}/{secret}", 0)


def _restart_apiserver() -> None:
    subprocess.run([str(ROOT / "lab" / "restart-apiserver")], check=True, timeout=120,
                   capture_output=True)


def test_watches_answered_410_list_again_and_miss_nothing(
    lab: Lab, admin_api: ApiClient, namespace: str, proxied: tuple[Lab, TcpProxy],
    tmp_path: Path
) -> None:
    via_proxy, proxy = proxied
    ctl = ControllerProcess(via_proxy, controller_config(lab, tmp_path, "relist"), free_port(),
                            f"test-{uuid.uuid4().hex[:8]}", "relister", tmp_path).start()
    try:
        ctl.wait_leading()
        _ingress(admin_api, namespace, "before", [lab.host("before")])
        before = wait_for(lambda: read_secret(admin_api, namespace, "before-tls"), 20,
                          "before-tls")
        core: Any = k8s.CoreV1Api(admin_api)
        seen = core.list_namespaced_secret(namespace).metadata.resource_version
        # The replay of certificates written (tests/lab/replay.py, bench/faults.py) is to follow
        # the namespace from here across the same restart.
        writes = CertificateWrites(admin_api, namespace, seen)
        proxy.close()  # the controller's watches break; it keeps the versions it had seen
        wait_for(lambda: ctl.value("certbotk8s_kube_api_reachable") == 0, 20,
                 "the controller to notice")
        # /readyz stays 200 (the replica still serves the tokens it holds); its detail names
        # the cause: the broken watches first, then every reconnect refused.
        status, detail = wait_for(lambda: (lambda got: got if "connection refused" in got[1]
                                           else None)(ctl.get("/readyz")), 20, "the cause")
        assert status == 200 and "API server: unreachable for" in detail
        # While it is cut off: a new source, and the API server restarts, so its watch cache
        # starts after that write and every version the controller holds is too old.
        _ingress(admin_api, namespace, "gap", [lab.host("gap")])
        _restart_apiserver()
        raw = core.list_namespaced_secret(namespace, watch=True, resource_version=seen,
                                          timeout_seconds=5, _preload_content=False)
        first = json.loads(raw.data.splitlines()[0])
        assert (first["type"], first["object"]["code"]) == ("ERROR", 410)  # the fault is real
        with pytest.raises(Expired):
            certificates_written(admin_api, namespace, seen)
        restarted = core.list_namespaced_secret(namespace).metadata.resource_version
        proxy.open()
        gap = wait_for(lambda: read_secret(admin_api, namespace, "gap-tls"), 60,
                       "gap-tls: the source created while the watches were away")
        for resource in ("ingresses.networking.k8s.io", "secrets (certbotk8s-managed)"):
            wait_for(functools.partial(ctl.value, "certbotk8s_watch_expired_total",
                                       resource=resource),
                     20, f"the 410 answer to the {resource} watch, and its list")
        wait_for(lambda: ctl.value("certbotk8s_kube_api_reachable") == 1, 20, "reachable")
        assert ctl.value("certbotk8s_kube_api_unreachable_seconds") == 0
        # Nothing missed, nothing twice: one order and one write for the new source, the
        # certificate from before untouched.
        assert _orders_for(ctl, namespace, "gap-tls") == 1
        assert _certificates_written(admin_api, namespace, "gap-tls", restarted) == [
            _serial(gap)]
        assert _certificates_written(admin_api, namespace, "before-tls", restarted) in (
            [], [_serial(before)])  # (annotation writes replay the same certificate)
        assert _serial(read_secret(admin_api, namespace, "before-tls")) == _serial(before)
        assert _orders_for(ctl, namespace, "before-tls") == 1
        # The replay's version is gone: a list fills the gap, and says so.
        writes.follow()
        assert writes.written == {"before-tls": [_serial(before)], "gap-tls": [_serial(gap)]}
        assert writes.relists == 1
        # After the outage, an Event on the Lease says what happened and for how long.
        events = wait_for(lambda: [e for e in _events(admin_api, "certbotk8s",
                                                      "ApiServerUnreachable", ctl.lease)
                                   if "relister" in e.message], 20, "the outage Event")
        assert "could not reach the API server for" in events[0].message
        assert "connection refused" in events[0].message
    finally:
        ctl.stop()


def test_status_with_the_api_server_unreachable_is_one_plain_line(
    lab: Lab, tmp_path: Path
) -> None:
    with TcpProxy(api_port(lab)) as proxy:
        cut = through_proxy(lab, proxy, tmp_path, "KUBECONFIG")
        proxy.close()
        done = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "status"],
                              env=dict(os.environ, KUBECONFIG=cut["KUBECONFIG"],
                                       CERTBOTK8S_CONFIG=lab["CERTBOTK8S_CONFIG"]),
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"API server 127.0.0.1:{proxy.port} unreachable (connection refused)" in lines[0]
    assert done.stdout == ""


def _run_cli(*args: str, kubeconfig: str, config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "certbotk8s.cli", *args],
                          env=dict(os.environ, KUBECONFIG=kubeconfig, CERTBOTK8S_CONFIG=config),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_etcd_away_is_named_by_status_renew_and_the_controller_while_it_lasts(
    lab: Lab, admin_api: ApiClient, controller_api: ApiClient, tmp_path: Path
) -> None:
    ctl = ControllerProcess(lab, controller_config(lab, tmp_path, "etcd"), free_port(),
                            f"test-{uuid.uuid4().hex[:8]}", "storage-watcher", tmp_path).start()
    try:
        ctl.wait_leading()
        fault("stop", "etcd")
        try:
            # The one-shot commands say so in one line and exit 1, instead of waiting out the
            # API server's 60 s timeout on their first read.
            for args in (("status",), ("renew", "--once")):
                done = _run_cli(*args, kubeconfig=lab["KUBECONFIG"],
                                config=lab["CERTBOTK8S_CONFIG"])
                assert done.returncode == 1, (args, done.stdout, done.stderr)
                lines = done.stderr.strip().splitlines()
                assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
                assert lines[0] == (f"certbotk8s: API server {lab['KUBE_APISERVER']}: the API "
                                    "server cannot reach its storage (readyz: etcd failed); "
                                    "Secrets and sources can be neither read nor written "
                                    "until it is back")
            # The controller: its watches still answer from the API server's cache, but the
            # Lease cannot be renewed; the cause is asked of the API server and shown.
            wait_for(lambda: ctl.value("certbotk8s_kube_api_reachable") == 0, 30,
                     "the controller to notice")
            status, detail = wait_for(lambda: (lambda got: got if "etcd failed" in got[1]
                                               else None)(ctl.get("/readyz")), 30, "the cause")
            assert status == 200 and "API server: unreachable for" in detail
            assert "cannot reach its storage (readyz: etcd failed)" in detail
            assert not ctl.is_leader()  # no order placed that could not be recorded
        finally:
            fault("start", "etcd")
            wait_for(lambda: failing_readiness_checks(admin_api) == [], 90, "etcd back")
        wait_for(lambda: ctl.value("certbotk8s_kube_api_reachable") == 1, 30, "reachable")
        wait_for(ctl.is_leader, 30, "leading again")
        events = wait_for(lambda: [e for e in _events(admin_api, "certbotk8s",
                                                      "ApiServerUnreachable", ctl.lease)
                                   if "storage-watcher" in e.message], 30, "the outage Event")
        assert "cannot reach its storage (readyz: etcd failed)" in events[0].message
    finally:
        ctl.stop()


def _gated_dns_hook(lab: Lab, directory: Path) -> tuple[Path, Path]:
    """An exec DNS-01 hook (nsupdate to the lab's BIND) whose `present` announces itself in
    `<gate>.presenting` and then waits for the test to create `<gate>`; and the gate's path."""
    gate = directory / "gate"
    host, port = lab["DNS_SERVER"].rsplit(":", 1)
    key = f"{lab['DNS_TSIG_ALGORITHM']}:{lab['DNS_TSIG_NAME']}:{lab['DNS_TSIG_SECRET']}"
    hook = directory / "hook.sh"
    hook.write_text(f"""#!/bin/sh
set -eu
if [ "$CERTBOTK8S_ACTION" = present ]; then
  verb=add ttl=60
  touch '{gate}.presenting'
  i=0
  while [ ! -e '{gate}' ]; do i=$((i+1)); [ $i -lt 1000 ] || exit 9; sleep 0.05; done
else
  verb=delete ttl=
fi
nsupdate -y '{key}' <<END
server {host} {port}
zone $CERTBOTK8S_ZONE
update $verb $CERTBOTK8S_FQDN $ttl TXT "$CERTBOTK8S_VALUE"
send
END
""")
    hook.chmod(0o700)
    return hook, gate


def test_certificate_issued_while_the_api_server_is_away_is_written_later_without_a_new_order(
    lab: Lab, admin_api: ApiClient, namespace: str, proxied: tuple[Lab, TcpProxy],
    tmp_path: Path
) -> None:
    via_proxy, proxy = proxied
    hook, gate = _gated_dns_hook(lab, tmp_path)
    config = controller_config(lab, tmp_path, "unwritten")
    data = yaml.safe_load(config.read_text())
    bind = data["dnsProviders"]["lab-bind"]
    data["dnsProviders"]["gated"] = {"type": "exec", "command": [str(hook)], "timeout": 60,
                                     "resolver": bind["resolver"],
                                     "nameserverPort": bind["nameserverPort"]}
    config.write_text(yaml.safe_dump(data))
    # A long Lease: this replica stays the leader while it is cut off for a few seconds, so
    # the order runs to the end and only the Secret write meets the missing API server.
    ctl = ControllerProcess(via_proxy, config, free_port(), f"test-{uuid.uuid4().hex[:8]}",
                            "unwritten-writer", tmp_path, lease_duration=60).start()
    try:
        ctl.wait_leading()
        core: Any = k8s.CoreV1Api(admin_api)
        since = core.list_namespaced_secret(namespace).metadata.resource_version
        networking: Any = k8s.NetworkingV1Api(admin_api)
        networking.create_namespaced_ingress(namespace, {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "held", "annotations": {
                "certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "dns-01",
                "certbotk8s.io/dns-provider": "gated"}},
            "spec": {"tls": [{"hosts": [lab.host("held")], "secretName": "held-tls"}],
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
        wait_for(Path(f"{gate}.presenting").exists, 30, "the DNS-01 record being presented")
        proxy.close()  # the API server is gone for this replica from here
        wait_for(lambda: ctl.value("certbotk8s_kube_api_reachable") == 0, 20,
                 "the controller to notice")
        gate.touch()  # the order completes at the CA; the Secret write cannot
        wait_for(lambda: ctl.value("certbotk8s_unwritten_certificates") == 1, 60,
                 "the issued certificate kept unwritten")
        assert read_secret(admin_api, namespace, "held-tls") is None
        # not a failure: no backoff counted
        assert not any(v for (metric, labels), v in ctl.metrics().items()
                       if metric == "certbotk8s_certificate_failed_attempts"
                       and ("name", "held-tls") in labels and ("namespace", namespace) in labels)
        record = record_of(admin_api, namespace, "held-tls")
        assert secret_meta.FAILURES not in record and secret_meta.NEXT_ATTEMPT not in record
        proxy.open()
        secret = wait_for(lambda: read_secret(admin_api, namespace, "held-tls"), 60,
                          "held-tls written once the API server answers")
        serial = _serial(secret)
        written = f"wrote the certificate issued earlier (serial {serial}); no new order"
        # (logged just after the write returns: the Secret can be seen a moment before)
        wait_for(lambda: written in ctl.log_path.read_text(), 10, "the kept certificate written")
        assert _orders_for(ctl, namespace, "held-tls") == 1
        assert _certificates_written(admin_api, namespace, "held-tls", since) == [serial]
        wait_for(lambda: ctl.value("certbotk8s_unwritten_certificates") == 0, 10, "gauge")
    finally:
        ctl.stop()
