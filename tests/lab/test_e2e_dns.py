"""End to end: `certbotk8s renew --once` with each DNS provider type's failures and successes seen
as the user sees them (Events, status), and no credential in any of them (real lab)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from .conftest import Lab, read_secret, verify_chain
from .test_e2e_renew import Run, _ingress, certbotk8s, events_for

pytestmark = pytest.mark.lab
__all__ = ["certbotk8s"]  # the CLI fixture, shared with test_e2e_renew

CONTROLLER_NS = "certbotk8s"


def _secret(api: ApiClient, name: str, data: dict[str, str]) -> None:
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name, namespace=CONTROLLER_NS),
                        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})
    core: Any = k8s.CoreV1Api(api)
    try:
        core.create_namespaced_secret(CONTROLLER_NS, body)
    except ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_secret(name, CONTROLLER_NS, body)


def _config(lab: Lab, tmp_path: Path, providers: dict[str, Any]) -> str:
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    config["issuers"]["pdns"] = {**config["issuers"]["pebble"],
                                 "directory": lab["ACME_DIRECTORY_PDNS"]}
    config["dnsProviders"].update(providers)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _pdns_provider(lab: Lab, secret: str) -> dict[str, Any]:
    """lexicon powerdns; the propagation check asks the lab's PowerDNS (no public DNS here)."""
    return {"type": "lexicon", "provider": "powerdns", "zones": [lab["PDNS_ZONE"]],
            "resolver": lab["PDNS_SERVER"],
            "nameserverPort": int(lab["PDNS_SERVER"].rsplit(":", 1)[1]),
            "options": {"pdns_server": lab["PDNS_API"]},
            "credentials": {"auth_token": {"name": secret, "key": "api-key"}}}


def _assert_nowhere(secret: str, run: Run, events: list[tuple[str, str, str]],
                    status: Run) -> None:
    assert secret not in run.out
    assert all(secret not in message for _, _, message in events)
    assert secret not in status.out


def test_powerdns_through_lexicon_issues_a_wildcard_from_an_ingress(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    name = f"pdns-{uuid.uuid4().hex[:8]}"
    _secret(admin_api, name, {"api-key": lab["PDNS_API_KEY"]})
    config = _config(lab, tmp_path, {"pdns": _pdns_provider(lab, name)})
    apex = f"{name}.{lab['PDNS_ZONE']}"
    _ingress(admin_api, namespace, "wild", {
        "tls": [{"hosts": [f"*.{apex}", apex], "secretName": "wild-tls"}]},
        annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/issuer": "pdns",
                     "certbotk8s.io/dns-provider": "pdns"})
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code == 0, run
    secret = read_secret(admin_api, namespace, "wild-tls")
    assert secret is not None
    verify_chain(base64.b64decode(secret.data["tls.crt"]), lab.roots("PEBBLE_MGMT_PDNS"))
    status = certbotk8s("status", "-n", namespace, config=config)
    _assert_nowhere(lab["PDNS_API_KEY"], run, events_for(admin_api, namespace, "wild"), status)


def test_api_refusing_the_credentials_is_a_refused_order_event(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    name = f"pdns-bad-{uuid.uuid4().hex[:8]}"
    wrong = f"wrong-key-{uuid.uuid4().hex}"
    _secret(admin_api, name, {"api-key": wrong})
    config = _config(lab, tmp_path, {"pdns": _pdns_provider(lab, name)})
    host = f"{name}.{lab['PDNS_ZONE']}"
    _ingress(admin_api, namespace, "site", {"tls": [{"hosts": [host], "secretName": "s-tls"}]},
             annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/issuer": "pdns",
                          "certbotk8s.io/dns-provider": "pdns"})
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code != 0, run
    assert read_secret(admin_api, namespace, "s-tls") is None
    events = events_for(admin_api, namespace, "site")
    failed = [m for _, r, m in events if r == "IssuanceFailed"]
    assert failed and "lexicon powerdns" in failed[0] and "401" in failed[0], events
    status = certbotk8s("status", "-n", namespace, "-o", "json", config=config)
    _assert_nowhere(wrong, run, events, status)


def test_route53_missing_zone_is_a_refused_order_event(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    name = f"r53-{uuid.uuid4().hex[:8]}"
    secret_key = f"aws-secret-{uuid.uuid4().hex}"
    _secret(admin_api, name, {"id": "AKIACERTBOTK8SE2E000", "secret": secret_key})
    zone = f"{name}.test"  # no such hosted zone in moto
    config = _config(lab, tmp_path, {"aws": {
        "type": "lexicon", "provider": "route53", "zones": [zone],
        "options": {"endpoint_url": lab["MOTO_ENDPOINT"]},
        "credentials": {"auth_access_key": {"name": name, "key": "id"},
                        "auth_access_secret": {"name": name, "key": "secret"}}}})
    _ingress(admin_api, namespace, "site", {"tls": [{"hosts": [f"www.{zone}"],
                                                     "secretName": "s-tls"}]},
             annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/dns-provider": "aws"})
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code != 0, run
    events = events_for(admin_api, namespace, "site")
    failed = [m for _, r, m in events if r == "IssuanceFailed"]
    assert failed and "lexicon route53" in failed[0] and "No domain found" in failed[0], events
    status = certbotk8s("status", "-n", namespace, "-o", "json", config=config)
    _assert_nowhere(secret_key, run, events, status)


def test_rfc2136_bad_tsig_secret_names_the_server_not_the_secret(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    name = f"tsig-{uuid.uuid4().hex[:8]}"
    wrong = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    _secret(admin_api, name, {"secret": wrong})
    config = _config(lab, tmp_path, {"badkey": {
        "type": "rfc2136", "server": lab["DNS_SERVER"], "resolver": lab["DNS_SERVER"],
        "nameserverPort": lab.dns_port,
        "tsig": {"keyName": lab["DNS_TSIG_NAME"], "secretRef": {"name": name, "key": "secret"}}}})
    _ingress(admin_api, namespace, "site", {"tls": [{"hosts": [lab.host("tsig")],
                                                     "secretName": "s-tls"}]},
             annotations={"certbotk8s.io/enabled": "true",
                          "certbotk8s.io/dns-provider": "badkey"})
    run = certbotk8s("renew", "--once", "-n", namespace, config=config)
    assert run.code != 0, run
    events = events_for(admin_api, namespace, "site")
    failed = [m for _, r, m in events if r == "IssuanceFailed"]
    assert failed and lab["DNS_SERVER"] in failed[0], events
    assert f"TSIG key {lab['DNS_TSIG_NAME']} rejected" in failed[0]
    status = certbotk8s("status", "-n", namespace, "-o", "json", config=config)
    _assert_nowhere(wrong, run, events, status)


def test_provider_scoped_to_other_namespaces_is_refused_with_an_event(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    config = yaml.safe_load(Path(_config(lab, tmp_path, {})).read_text())
    config["dnsProviders"]["lab-bind"]["namespaces"] = ["team-elsewhere"]
    path = tmp_path / "scoped.yaml"
    path.write_text(yaml.safe_dump(config))
    _ingress(admin_api, namespace, "site", {"tls": [{"hosts": [lab.host("scope")],
                                                     "secretName": "s-tls"}]},
             annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "dns-01"})
    run = certbotk8s("renew", "--once", "-n", namespace, config=str(path))
    assert run.code != 0, run
    assert read_secret(admin_api, namespace, "s-tls") is None
    assert any(r == "InvalidAnnotation" and "may not be used from namespace" in m
               for _, r, m in events_for(admin_api, namespace, "site"))
