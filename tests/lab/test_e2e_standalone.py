"""End to end: `renew --once` issues the config's standalone certificates (`certificates:`), with
DNS-01 checked only through a recursive resolver (the lab's forwarding named in front of BIND)
while the authoritative servers cannot be reached (real lab)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from .conftest import Lab
from .test_e2e_renew import Run, assert_certificate, certbotk8s

pytestmark = pytest.mark.lab
__all__ = ["certbotk8s"]  # the CLI fixture, shared with test_e2e_renew


def _closed_udp_port() -> int:
    """A loopback port nothing answers on (a query there is refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(lab: Lab, tmp_path: Path, mode: str, certificates: list[dict[str, Any]],
            propagation_timeout: int = 30) -> str:
    """The lab config, its BIND provider's authoritative port closed: every lookup goes
    through the forwarding resolver, and authoritative servers are out of reach (as for pods
    whose egress allows only the cluster DNS)."""
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    bind = config["dnsProviders"]["lab-bind"]
    bind["resolver"] = lab["DNS_FORWARDER"]
    bind["nameserverPort"] = _closed_udp_port()
    propagation: dict[str, Any] = {"mode": mode}
    if mode == "recursive":
        propagation["nameservers"] = [lab["DNS_FORWARDER"]]
    config["solver"]["dns01"] = {"propagationTimeout": propagation_timeout, "pollInterval": 1,
                                 "propagation": propagation}
    config["certificates"] = certificates
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_two_standalone_certificates_one_checked_only_through_a_recursive_resolver(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    apex, web = lab.host("standalone"), lab.host("mqtt")
    config = _config(lab, tmp_path, "recursive", [
        {"name": "wildcard", "hosts": [f"*.{apex}", apex],
         "secret": {"namespace": namespace, "name": "wildcard-tls"}, "challenge": "dns-01"},
        {"name": "mqtt", "hosts": [web], "secret": {"namespace": namespace, "name": "mqtt-tls"},
         "keyType": "ecdsa-p384"},
    ])
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code == 0, run
    assert_certificate(lab, admin_api, namespace, "wildcard-tls", [f"*.{apex}", apex])
    assert_certificate(lab, admin_api, namespace, "mqtt-tls", [web])
    status = certbotk8s("status", "-n", namespace, config=config)
    assert status.code == 0, status
    assert "Config/certbotk8s/wildcard" in status.out and "Config/certbotk8s/mqtt" in status.out


def test_the_same_order_checked_on_the_unreachable_authoritative_servers_fails(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    """The contrast: the default (authoritative) mode asks the zone's nameservers on the
    closed port and cannot see the record, so nothing is issued."""
    apex = lab.host("authoritative")
    config = _config(lab, tmp_path, "authoritative", [
        {"name": "wildcard", "hosts": [f"*.{apex}"],
         "secret": {"namespace": namespace, "name": "wildcard-tls"}, "challenge": "dns-01"},
    ], propagation_timeout=3)
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code != 0, run
    assert "not visible on every authoritative server" in run.out
