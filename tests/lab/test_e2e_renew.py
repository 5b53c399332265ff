"""End to end: `certbotk8s renew --once` as the controller's identity puts every source's Secret
where the proxy reads it, refuses what it must, and renews with ARI `replaces` (real lab)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.core.pki import certs
from certbotk8s.core.state import ari_memory, secret_meta

from .conftest import ROOT, Lab, read_secret, verify_chain
from .records_view import drop_record, record_of, set_record

pytestmark = pytest.mark.lab

ISTIO = ("networking.istio.io", "v1", "gateways")
GATEWAY_API = ("gateway.networking.k8s.io", "v1", "gateways")
REFERENCE_GRANT = ("gateway.networking.k8s.io", "v1beta1", "referencegrants")
ALLOWED_ISTIO_NS = "istio-apps"  # on the lab config's allow-list


@dataclass(frozen=True)
class Run:
    code: int
    out: str

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.out}"


@pytest.fixture
def certbotk8s(lab: Lab, controller_api: ApiClient) -> Callable[..., Run]:
    """Run the real CLI in a subprocess under the controller's RBAC-bound identity."""

    def run(*args: str, config: str | None = None, person: bool = False) -> Run:
        """`person`: as someone with their own kubeconfig (the lab's admin), not the
        ServiceAccount (`status` reads Events with its user's rights)."""
        env = dict(os.environ)
        env["KUBECONFIG"] = lab["KUBECONFIG" if person else "CONTROLLER_KUBECONFIG"]
        env["CERTBOTK8S_CONFIG"] = config or lab["CERTBOTK8S_CONFIG"]
        proc = subprocess.run(
            [sys.executable, "-m", "certbotk8s.cli", *args], env=env, cwd=ROOT,
            capture_output=True, text=True, timeout=240,
        )
        return Run(proc.returncode, proc.stdout + proc.stderr)

    return run


def _core(api: ApiClient) -> Any:
    """CoreV1Api, untyped: tests build bodies as plain dicts, as users write manifests."""
    return k8s.CoreV1Api(api)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _ensure_namespace(api: ApiClient, name: str) -> str:
    try:
        _core(api).create_namespace(
            k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    except ApiException as e:
        if e.status != 409:
            raise
    return name


def _meta(name: str, namespace: str, annotations: dict[str, str] | None = None
          ) -> dict[str, Any]:
    return {"name": name, "namespace": namespace,
            "annotations": {"certbotk8s.io/enabled": "true"} if annotations is None
            else annotations}


def _ingress(api: ApiClient, namespace: str, name: str, spec: dict[str, Any],
             annotations: dict[str, str] | None = None) -> None:
    if "rules" not in spec:  # the API server wants rules or a default backend
        spec = {**spec, "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(name, namespace, annotations), "spec": spec}
    networking: Any = k8s.NetworkingV1Api(api)
    networking.create_namespaced_ingress(namespace, body)


def _custom(api: ApiClient, crd: tuple[str, str, str], namespace: str, body: dict[str, Any]
            ) -> None:
    group, version, plural = crd
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(group, version, namespace, plural,
                                                              body)


def _rule(host: str) -> dict[str, Any]:
    return {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}]}}




def assert_certificate(lab: Lab, api: ApiClient, namespace: str, name: str,
                       hosts: list[str]) -> Any:
    secret = read_secret(api, namespace, name)
    assert secret is not None, f"Secret {namespace}/{name} was not written"
    assert secret.type == "kubernetes.io/tls"
    crt = base64.b64decode(secret.data["tls.crt"])
    key = base64.b64decode(secret.data["tls.key"])
    verify_chain(crt, lab.roots())
    info = certs.certificate_info(crt)
    assert info.sans == tuple(sorted(hosts))
    from certbotk8s.core.pki import keys

    assert certs.key_matches_certificate(keys.load_key_pem(key), crt)
    assert secret.metadata.labels[secret_meta.MANAGED_BY_LABEL] == "certbotk8s"
    annotations = secret.metadata.annotations
    assert annotations[secret_meta.HOSTS] == ",".join(sorted(hosts))
    assert annotations[secret_meta.SERIAL] == info.serial
    assert annotations[secret_meta.ISSUER] == "pebble"
    assert annotations[secret_meta.ARI_CERT_ID] == info.ari_cert_id
    return secret


def set_ari_window(lab: Lab, fullchain: bytes, start: datetime | None, end: datetime | None,
                   raw: str | None = None) -> None:
    """Make Pebble answer ARI for this certificate with the window [start, end] (or `raw`)."""
    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    answer = raw if raw is not None else json.dumps({"suggestedWindow": {
        "start": secret_meta.format_time(start) if start else "",
        "end": secret_meta.format_time(end) if end else ""}})
    response = requests.post(f"{lab['PEBBLE_MGMT']}/set-renewal-info/", json={
        "Certificate": leaf.public_bytes(serialization.Encoding.PEM).decode(),
        "ARIResponse": answer}, verify=lab["ACME_CA_BUNDLE"], timeout=5)
    assert response.ok, response.text


def events_for(api: ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    listed = _core(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}")
    return [(e.type, e.reason, e.message) for e in listed.items]


# --- Ingress ------------------------------------------------------------------------------


def test_ingress_with_tls_issues_each_secret_and_second_pass_does_nothing(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    a, b = lab.host("ing-a"), lab.host("ing-b")
    _ingress(admin_api, namespace, "web", {
        "ingressClassName": "nginx",
        "tls": [{"hosts": [a, b], "secretName": "web-tls"}],
        "rules": [_rule(a), _rule(b)],
    })
    first = certbotk8s("renew", "--once", "-n", namespace)
    assert first.code == 0, first
    assert "1 issued or renewed" in first.out
    assert_certificate(lab, admin_api, namespace, "web-tls", [a, b])
    assert ("Normal", "Issued") in {(t, r) for t, r, _ in events_for(admin_api, namespace, "web")}

    second = certbotk8s("renew", "--once", "-n", namespace)
    assert second.code == 0, second
    assert "0 issued or renewed" in second.out and "1 up to date" in second.out


def test_ingress_without_tls_gets_name_tls_secret_from_rules(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("rules")
    _ingress(admin_api, namespace, "shop", {"rules": [_rule(host)]})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    assert_certificate(lab, admin_api, namespace, "shop-tls", [host])


def test_kube_lego_tls_acme_annotation_opts_in(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("lego")
    _ingress(admin_api, namespace, "legacy", {
        "tls": [{"hosts": [host], "secretName": "legacy-tls"}], "rules": [_rule(host)],
    }, annotations={"kubernetes.io/tls-acme": "true"})
    _ingress(admin_api, namespace, "not-opted-in", {
        "tls": [{"hosts": [lab.host("no")], "secretName": "ignored-tls"}],
    }, annotations={})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    assert_certificate(lab, admin_api, namespace, "legacy-tls", [host])
    assert read_secret(admin_api, namespace, "ignored-tls") is None


# --- Istio --------------------------------------------------------------------------------


def _istio_gateway(name: str, namespace: str, servers: list[dict[str, Any]],
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": _meta(name, namespace, annotations),
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


def _https_server(hosts: list[str], credential: str) -> dict[str, Any]:
    return {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": hosts,
            "tls": {"mode": "SIMPLE", "credentialName": credential}}


def test_istio_sds_secret_lands_in_istio_system(
    lab: Lab, admin_api: ApiClient, certbotk8s: Callable[..., Run]
) -> None:
    ns = _ensure_namespace(admin_api, ALLOWED_ISTIO_NS)
    host = lab.host("istio")
    credential = f"shop-{_uid()}-cred"
    _custom(admin_api, ISTIO, ns, _istio_gateway(f"gw-{_uid()}", ns, [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [f"*/{host}"]},
        _https_server([f"{ns}/{host}", "*"], credential),
    ]))
    run = certbotk8s("renew", "--once", "-n", ns)
    assert run.code == 0, run
    assert_certificate(lab, admin_api, "istio-system", credential, [host])
    assert read_secret(admin_api, ns, credential) is None


def test_istio_gateway_outside_allow_list_writes_nothing(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    credential = f"tenant-{_uid()}"
    _custom(admin_api, ISTIO, namespace, _istio_gateway("gw", namespace, [
        _https_server([lab.host("tenant")], credential)]))
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    assert "NamespaceNotAllowed" in run.out
    assert read_secret(admin_api, "istio-system", credential) is None
    assert read_secret(admin_api, namespace, credential) is None
    assert "NamespaceNotAllowed" in {r for _, r, _ in events_for(admin_api, namespace, "gw")}


def test_istio_file_mount_gets_one_secret_with_all_hosts(
    lab: Lab, admin_api: ApiClient, certbotk8s: Callable[..., Run]
) -> None:
    hosts = sorted([lab.host("mount-a"), lab.host("mount-b")])
    name = f"legacy-{_uid()}"
    mount = {"mode": "SIMPLE",
             "serverCertificate": "/etc/istio/ingressgateway-certs/tls.crt",
             "privateKey": "/etc/istio/ingressgateway-certs/tls.key"}
    _custom(admin_api, ISTIO, "istio-system", _istio_gateway(name, "istio-system", [
        {"port": {"number": 443, "name": f"https-{i}", "protocol": "HTTPS"}, "hosts": [h],
         "tls": mount} for i, h in enumerate(hosts)
    ]))
    try:
        run = certbotk8s("renew", "--once", "-n", "istio-system")
        assert run.code == 0, run
        assert_certificate(lab, admin_api, "istio-system", "istio-ingressgateway-certs", hosts)
    finally:
        k8s.CustomObjectsApi(admin_api).delete_namespaced_custom_object(
            *ISTIO[:2], "istio-system", ISTIO[2], name)


# --- Gateway API --------------------------------------------------------------------------


def _gateway_api(name: str, namespace: str, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": _meta(name, namespace),
            "spec": {"gatewayClassName": "example", "listeners": listeners}}


def _listener(name: str, host: str, secret: str, namespace: str | None = None
              ) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": "Secret", "name": secret}
    if namespace:
        ref["namespace"] = namespace
    return {"name": name, "protocol": "HTTPS", "port": 443, "hostname": host,
            "tls": {"mode": "Terminate", "certificateRefs": [ref]}}


def test_gateway_api_same_namespace_and_reference_grant(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    certs_ns = _ensure_namespace(admin_api, f"t-certs-{_uid()}")
    local, remote = lab.host("gwapi"), lab.host("gwx")
    _custom(admin_api, GATEWAY_API, namespace, _gateway_api("edge", namespace, [
        {"name": "http", "protocol": "HTTP", "port": 80},
        _listener("local", local, "local-tls"),
        _listener("remote", remote, "remote-tls", certs_ns),
    ]))
    refused = certbotk8s("renew", "--once", "-n", namespace)
    assert refused.code != 0, refused
    assert "RefNotPermitted" in refused.out
    assert_certificate(lab, admin_api, namespace, "local-tls", [local])
    assert read_secret(admin_api, certs_ns, "remote-tls") is None

    _custom(admin_api, REFERENCE_GRANT, certs_ns, {
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "allow-edge", "namespace": certs_ns},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                           "namespace": namespace}],
                 "to": [{"group": "", "kind": "Secret", "name": "remote-tls"}]},
    })
    granted = certbotk8s("renew", "--once", "-n", namespace)
    assert granted.code == 0, granted
    assert_certificate(lab, admin_api, certs_ns, "remote-tls", [remote])


# --- default certificate ------------------------------------------------------------------


def test_default_certificate_via_dns01_wildcard(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    apex = lab.host("dflt")
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    config["defaultCertificate"] = {
        "hosts": [f"*.{apex}", apex],
        "secret": {"namespace": namespace, "name": "default-ssl-certificate"},
        "challenge": "dns-01",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = certbotk8s("renew", "--once", "-n", namespace, config=str(path))
    assert run.code == 0, run
    assert_certificate(lab, admin_api, namespace, "default-ssl-certificate", [f"*.{apex}", apex])


# --- refusals -----------------------------------------------------------------------------


def test_wildcard_without_dns01_and_malformed_annotation_are_refused_with_events(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    apex = lab.host("wild")
    _ingress(admin_api, namespace, "wild", {
        "tls": [{"hosts": [f"*.{apex}"], "secretName": "wild-tls"}],
    })
    _ingress(admin_api, namespace, "typo", {
        "tls": [{"hosts": [lab.host("typo")], "secretName": "typo-tls"}],
    }, annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/key-type": "ecdsa-p999"})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    assert read_secret(admin_api, namespace, "wild-tls") is None
    assert read_secret(admin_api, namespace, "typo-tls") is None
    wild = events_for(admin_api, namespace, "wild")
    typo = events_for(admin_api, namespace, "typo")
    assert ("Warning", "WildcardNeedsDns01") in {(t, r) for t, r, _ in wild}
    assert any(r == "InvalidAnnotation" and "ecdsa-p999" in m for _, r, m in typo)


def test_foreign_secret_is_never_overwritten(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("foreign")
    _core(admin_api).create_namespaced_secret(namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="theirs-tls"), type="kubernetes.io/tls",
        string_data={"tls.crt": "not ours", "tls.key": "not ours"}))
    _ingress(admin_api, namespace, "theirs", {
        "tls": [{"hosts": [host], "secretName": "theirs-tls"}]})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    secret = read_secret(admin_api, namespace, "theirs-tls")
    assert secret is not None
    assert base64.b64decode(secret.data["tls.crt"]) == b"not ours"
    assert not (secret.metadata.labels or {})
    assert ("Warning", "SecretNotManaged") in {
        (t, r) for t, r, _ in events_for(admin_api, namespace, "theirs")}


# --- renewal ------------------------------------------------------------------------------


def test_renewal_sends_replaces_and_keeps_the_secret_managed(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("renew")
    _ingress(admin_api, namespace, "app", {
        "tls": [{"hosts": [host], "secretName": "app-tls"}]},
        annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/profile": "shortlived"})
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    before = assert_certificate(lab, admin_api, namespace, "app-tls", [host])
    old_crt = base64.b64decode(before.data["tls.crt"])

    # The CA moves the renewal window to the first second of the certificate's life (ARI,
    # inside its validity), so its moment has passed and the next pass must renew.
    not_before = certs.certificate_info(old_crt).not_before
    set_ari_window(lab, old_crt, not_before, not_before + timedelta(seconds=1))
    pebble_log = Path(ROOT / ".lab" / "logs" / "pebble.log")
    replacements_before = pebble_log.read_text().count("is a replacement of")

    plan = certbotk8s("plan", "-n", namespace)
    assert plan.code == 0, plan
    assert "renew" in plan.out and "renewal window" in plan.out

    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    after = assert_certificate(lab, admin_api, namespace, "app-tls", [host])
    assert after.metadata.annotations[secret_meta.SERIAL] != before.metadata.annotations[
        secret_meta.SERIAL]
    assert ("Normal", "Renewed") in {(t, r) for t, r, _ in events_for(admin_api, namespace, "app")}
    # Pebble logs every order whose `replaces` it accepted
    assert pebble_log.read_text().count("is a replacement of") == replacements_before + 1


def test_status_and_plan_show_every_certificate(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("status")
    _ingress(admin_api, namespace, "site", {"tls": [{"hosts": [host], "secretName": "site-tls"}]})
    plan = certbotk8s("plan", "-n", namespace)
    assert plan.code == 0 and "issue" in plan.out and host in plan.out, plan
    assert read_secret(admin_api, namespace, "site-tls") is None  # plan changed nothing
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    status = certbotk8s("status", "-n", namespace, "-o", "json")
    assert status.code == 0, status
    rows = _rows(status)
    row = next(r for r in rows if r["secret"] == f"{namespace}/site-tls")
    assert row["hosts"] == [host] and row["state"] == "scheduled"
    not_after, renews = (secret_meta.parse_time(row[k]) for k in ("not_after", "next_renewal"))
    assert not_after is not None and renews is not None and renews < not_after
    table = certbotk8s("status", "-n", namespace)
    assert "NEXT RENEWAL" in table.out and f"{namespace}/site-tls" in table.out


def test_ca_refusal_fails_the_pass_and_status_tells_why(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    # The lab's Pebble refuses this name (domainBlocklist): a CA error, reported everywhere.
    _ingress(admin_api, namespace, "blocked", {
        "tls": [{"hosts": [lab.blocked_host()], "secretName": "blocked-tls"}]})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    assert "rejectedIdentifier" in run.out
    assert read_secret(admin_api, namespace, "blocked-tls") is None
    assert any(r == "IssuanceFailed" and "rejectedIdentifier" in m
               for _, r, m in events_for(admin_api, namespace, "blocked"))
    status = certbotk8s("status", "-n", namespace, "-o", "json", person=True)
    rows = _rows(status)
    row = next(r for r in rows if r["secret"] == f"{namespace}/blocked-tls")
    # the next attempt, after the first backoff step
    assert (row["state"], row["wait"], row["failures"]) == ("waiting", "BackingOff", 1)
    assert row["next_renewal"] == row["next_attempt"] and "backing off" in row["why"]
    assert "IssuanceFailed" in row["last_error"] and "rejectedIdentifier" in row["last_error"]
    # the ServiceAccount may not list Events: its status gives the records' error instead
    as_sa = _rows(certbotk8s("status", "-n", namespace, "-o", "json"))
    (sa_row,) = [r for r in as_sa if r["secret"] == f"{namespace}/blocked-tls"]
    assert "rejectedIdentifier" in sa_row["last_error"]


def test_two_sources_claiming_one_secret_are_a_conflict_not_a_flip_flop(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    for name in ("left", "right"):
        _ingress(admin_api, namespace, name, {
            "tls": [{"hosts": [lab.host(name)], "secretName": "shared-tls"}]})
    for _ in range(2):  # the same verdict on every pass
        run = certbotk8s("renew", "--once", "-n", namespace)
        assert run.code != 0, run
        assert "SecretConflict" in run.out
        assert read_secret(admin_api, namespace, "shared-tls") is None
    for name in ("left", "right"):
        assert ("Warning", "SecretConflict") in {
            (t, r) for t, r, _ in events_for(admin_api, namespace, name)}


def test_failed_renewal_keeps_the_old_certificate(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    host = lab.host("keepold")
    _ingress(admin_api, namespace, "keep", {"tls": [{"hosts": [host], "secretName": "keep-tls"}]})
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    before = assert_certificate(lab, admin_api, namespace, "keep-tls", [host])
    # The source now wants a name the CA refuses: the renewal fails, nothing is lost.
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.patch_namespaced_ingress("keep", namespace, {"spec": {"tls": [
        {"hosts": [host, lab.blocked_host()], "secretName": "keep-tls"}]}})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code != 0, run
    after = read_secret(admin_api, namespace, "keep-tls")
    assert after.data["tls.crt"] == before.data["tls.crt"]
    assert after.data["tls.key"] == before.data["tls.key"]
    assert "rejectedIdentifier" in record_of(admin_api, namespace, "keep-tls")[
        secret_meta.LAST_ERROR]


def test_shared_tokens_go_through_the_token_secret(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    # With --shared-tokens the pass publishes tokens in the controller namespace's token
    # Secret (which controller replicas watch) and serves them from there itself.
    host = lab.host("shared")
    _ingress(admin_api, namespace, "shared", {
        "tls": [{"hosts": [host], "secretName": "shared-tokens-tls"}]})
    run = certbotk8s("renew", "--once", "--shared-tokens", "-n", namespace)
    assert run.code == 0, run
    assert_certificate(lab, admin_api, namespace, "shared-tokens-tls", [host])
    store = read_secret(admin_api, "certbotk8s", "certbotk8s-http01-tokens")
    assert store is not None  # created on the first put
    assert not (store.data or {})  # and every token removed again after the order


# --- renewal decision, backoff, repair (issue 9) -------------------------------------------


def _rows(run: Run) -> list[dict[str, Any]]:
    """`status -o json` rows (log lines on stderr may follow the document)."""
    rows, _ = json.JSONDecoder().raw_decode(run.out[run.out.index("["):])
    return list(rows)


def _issue_one(lab: Lab, api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
               name: str, profile: str = "shortlived") -> tuple[str, Any]:
    host = lab.host(name)
    _ingress(api, namespace, name, {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}]},
             annotations={"certbotk8s.io/enabled": "true", "certbotk8s.io/profile": profile})
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    return host, assert_certificate(lab, api, namespace, f"{name}-tls", [host])


def test_malformed_ari_answers_fall_back_and_nothing_crashes(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    _, secret = _issue_one(lab, admin_api, namespace, certbotk8s, "badari")
    crt = base64.b64decode(secret.data["tls.crt"])
    # Each answer is told malformed by `plan`; all three end in the one AriMalformed, so the
    # other commands meet the last of them only (one process each: a CLI run costs seconds).
    for raw in ("{not json", json.dumps({"suggestedWindow": {"start": "yesterday"}}),
                json.dumps({"nothing": 1})):
        set_ari_window(lab, crt, None, None, raw=raw)
        plan = certbotk8s("plan", "-n", namespace)
        assert plan.code == 0 and "Traceback" not in plan.out, (raw, plan)
        assert "malformed renewal info" in plan.out, (raw, plan)
    for command in (("renew", "--once"), ("status",)):
        run = certbotk8s(*command, "-n", namespace)
        assert run.code == 0, run
        assert "Traceback" not in run.out, run
    # the certificate was kept: the lifetime fraction decides, not the broken answer
    kept = read_secret(admin_api, namespace, "badari-tls")
    assert kept.data["tls.crt"] == secret.data["tls.crt"]


def test_unreachable_ca_gives_a_message_per_certificate(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run],
    tmp_path: Path,
) -> None:
    _issue_one(lab, admin_api, namespace, certbotk8s, "noca")
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    config["issuers"]["pebble"]["directory"] = "https://127.0.0.1:1/dir"  # nobody listens
    broken = tmp_path / "config.yaml"
    broken.write_text(yaml.safe_dump(config))
    plan = certbotk8s("plan", "-n", namespace, config=str(broken))
    assert plan.code == 0, plan
    assert f"{namespace}/noca-tls" in plan.out and "ARI unavailable" in plan.out
    status = certbotk8s("status", "-n", namespace, "-o", "json", config=str(broken))
    assert status.code == 0, status
    rows = _rows(status)
    row = next(r for r in rows if r["secret"] == f"{namespace}/noca-tls")
    assert "ARI unavailable" in row["why"] and row["state"] == "scheduled"
    run = certbotk8s("renew", "--once", "-n", namespace, config=str(broken))
    assert run.code == 0 and "ARI unavailable" in run.out, run  # nothing was due


def test_chosen_moment_is_kept_in_the_record_and_a_moved_window_picks_again(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    _, secret = _issue_one(lab, admin_api, namespace, certbotk8s, "moment")
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0  # reads ARI, keeps a moment
    kept = record_of(admin_api, namespace, "moment-tls")
    value = kept[secret_meta.RENEWAL_MOMENT]
    at, cert_id, start, end = value.split()
    assert cert_id == kept[secret_meta.ARI_CERT_ID]
    assert start <= at <= end
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    again = record_of(admin_api, namespace, "moment-tls")
    assert again[secret_meta.RENEWAL_MOMENT] == value  # the same moment on every pass
    # the CA moves the window (later, still inside the validity): a new moment in it
    info = certs.certificate_info(base64.b64decode(secret.data["tls.crt"]))
    new_start, new_end = info.not_before + timedelta(days=4), info.not_before + timedelta(days=5)
    set_ari_window(lab, base64.b64decode(secret.data["tls.crt"]), new_start, new_end)
    # the CA is asked again only after its Retry-After (the window is remembered in the record)
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    assert record_of(admin_api, namespace, "moment-tls")[secret_meta.RENEWAL_MOMENT] == value
    set_record(admin_api, namespace, "moment-tls", {  # the Retry-After has passed
        ari_memory.ARI_NEXT_READ: secret_meta.format_time(datetime.now(UTC))})
    assert certbotk8s("renew", "--once", "-n", namespace).code == 0
    moved = record_of(admin_api, namespace, "moment-tls")
    at, _, start, end = moved[secret_meta.RENEWAL_MOMENT].split()
    assert (start, end) == (secret_meta.format_time(new_start), secret_meta.format_time(new_end))
    assert start <= at <= end
    status = certbotk8s("status", "-n", namespace, "-o", "json")
    rows = _rows(status)
    row = next(r for r in rows if r["secret"] == f"{namespace}/moment-tls")
    assert "renewal window" in row["why"] and row["next_renewal"] == at
    assert row["reason"] == "InsideAriWindow"


def test_a_lost_record_is_rebuilt_without_an_order_and_annotation_edits_change_nothing(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    _, secret = _issue_one(lab, admin_api, namespace, certbotk8s, "repair")
    record = record_of(admin_api, namespace, "repair-tls")
    assert record[secret_meta.SERIAL] == secret.metadata.annotations[secret_meta.SERIAL]
    # A tenant edits the display copy, and the record is lost.
    _core(admin_api).patch_namespaced_secret("repair-tls", namespace, {"metadata": {
        "annotations": {secret_meta.ISSUER: "other", secret_meta.PROFILE: None,
                        secret_meta.NOT_AFTER: "garbage"}}})
    drop_record(admin_api, namespace, "repair-tls")
    pebble_log = Path(ROOT / ".lab" / "logs" / "pebble.log")
    orders_before = pebble_log.read_text().count("Issued certificate serial")
    run = certbotk8s("renew", "--once", "-n", namespace)
    assert run.code == 0 and "repaired" in run.out, run
    rebuilt = record_of(admin_api, namespace, "repair-tls")
    for key in (secret_meta.SERIAL, secret_meta.ISSUER, secret_meta.PROFILE,
                secret_meta.NOT_AFTER, secret_meta.HOSTS):
        assert rebuilt[key] == record[key], key
    assert read_secret(admin_api, namespace, "repair-tls").data["tls.crt"] == \
        secret.data["tls.crt"]
    assert pebble_log.read_text().count("Issued certificate serial") == orders_before
    # rebuilt once: the next pass has nothing to do
    again = certbotk8s("renew", "--once", "-n", namespace)
    assert again.code == 0 and "repaired" not in again.out, again


def test_renew_once_backs_off_per_secret_and_status_shows_it(
    lab: Lab, admin_api: ApiClient, namespace: str, certbotk8s: Callable[..., Run]
) -> None:
    # Two Secrets (one existing, one not yet issued) that fail: each gets its own backoff,
    # kept on the cluster, and the next run does not order again before it ends.
    host, _ = _issue_one(lab, admin_api, namespace, certbotk8s, "fails")
    blocked = lab.blocked_host()
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.patch_namespaced_ingress("fails", namespace, {"spec": {"tls": [
        {"hosts": [host, blocked], "secretName": "fails-tls"}]}})
    _ingress(admin_api, namespace, "never", {
        "tls": [{"hosts": [blocked], "secretName": "never-tls"}]})
    first = certbotk8s("renew", "--once", "-n", namespace)
    assert first.code != 0 and first.out.count("rejectedIdentifier") >= 2, first
    annotations = record_of(admin_api, namespace, "fails-tls")
    assert annotations[secret_meta.FAILURES] == "1"
    next_attempt = secret_meta.parse_time(annotations[secret_meta.NEXT_ATTEMPT])
    assert next_attempt is not None and next_attempt > datetime.now(next_attempt.tzinfo)
    assert record_of(admin_api, namespace, "never-tls")[secret_meta.FAILURES] == "1"
    second = certbotk8s("renew", "--once", "-n", namespace)
    assert second.code != 0 and second.out.count("backing off after 1 failed") == 2, second
    # no second attempt was made: still one failure, recorded at the same time
    again = record_of(admin_api, namespace, "fails-tls")
    assert again[secret_meta.FAILURES] == "1"
    assert again[secret_meta.LAST_ERROR_AT] == annotations[secret_meta.LAST_ERROR_AT]
    status = certbotk8s("status", "-n", namespace, "-o", "json")
    rows = _rows(status)
    for name in ("fails-tls", "never-tls"):
        row = next(r for r in rows if r["secret"] == f"{namespace}/{name}")
        assert "backing off after 1 failed" in row["why"], row
        assert row["state"] == "waiting" and row["next_renewal"] is not None
