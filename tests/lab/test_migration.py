"""docs/migrating.md's cert-manager steps, run: Secrets shaped like cert-manager's (its label
and annotations, an RSA key, issued by the lab's Pebble) are adopted with no new order, renewed at
their normal time with ARI `replaces`; another CA's certificate is reported and replaced."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.acme.engine import AcmeEngine, OrderRequest
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.kube.secrets import account_secret_name
from certbotk8s.core.model import ChallengeType, KeyType
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.state import secret_meta

from .conftest import ROOT, Lab, read_secret
from .records_view import forget_ari_window, record_of
from .test_e2e_renew import Run, events_for, set_ari_window

pytestmark = pytest.mark.lab

PEBBLE_LOG = ROOT / ".lab" / "logs" / "pebble.log"
CM_ISSUER = "letsencrypt-prod"  # the ClusterIssuer name the Ingresses and Secrets carry


@pytest.fixture
def issuer() -> str:
    """The config's issuer for the lab's Pebble in this test (its own account Secret)."""
    return f"cm-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def migrating_config(lab: Lab, tmp_path: Path, issuer: str) -> Path:
    """Step 2 of docs/migrating.md: an issuer for the CA cert-manager used, and the mapping."""
    config = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    config["issuers"][issuer] = dict(config["issuers"]["pebble"])
    config["migration"] = {"certManagerIssuers": {CM_ISSUER: issuer}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _take_over_account(api: ApiClient, issuer: str, account_key: bytes) -> None:
    """Step 2b of docs/migrating.md: cert-manager's ACME account key (its ClusterIssuer's
    `privateKeySecretRef`, key `tls.key`) as certbotk8s's account Secret for the issuer."""
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": account_secret_name(issuer), "namespace": "certbotk8s",
                         "labels": {"app.kubernetes.io/managed-by": "certbotk8s",
                                    "certbotk8s.io/role": "acme-account"}},
            "data": {"account.key": base64.b64encode(account_key).decode()}}
    core: Any = k8s.CoreV1Api(api)
    core.create_namespaced_secret("certbotk8s", body)


@pytest.fixture
def cli(lab: Lab, controller_api: ApiClient, migrating_config: Path) -> Callable[..., Run]:
    """The real CLI in a subprocess as the controller's RBAC-bound identity."""

    def run(*args: str) -> Run:
        env = {**os.environ, "KUBECONFIG": lab["CONTROLLER_KUBECONFIG"],
               "CERTBOTK8S_CONFIG": str(migrating_config)}
        proc = subprocess.run([sys.executable, "-m", "certbotk8s.cli", *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=240)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    return run


def _rsa_pkcs1(key_pem: bytes) -> bytes:
    """cert-manager's default encoding of an RSA key (PKCS#1)."""
    key = serialization.load_pem_private_key(key_pem, None)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert_manager_secret(api: ApiClient, namespace: str, name: str, host: str,
                         fullchain: bytes, key_pem: bytes) -> None:
    """A Secret as cert-manager 1.12+ writes it for an ingress-shim Certificate."""
    body = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"controller.cert-manager.io/fao": "true"},
            "annotations": {
                "cert-manager.io/alt-names": host,
                "cert-manager.io/certificate-name": name,
                "cert-manager.io/common-name": "",
                "cert-manager.io/ip-sans": "",
                "cert-manager.io/uri-sans": "",
                "cert-manager.io/issuer-group": "cert-manager.io",
                "cert-manager.io/issuer-kind": "ClusterIssuer",
                "cert-manager.io/issuer-name": CM_ISSUER,
            },
        },
        "data": {k: base64.b64encode(v).decode() for k, v in
                 {"tls.crt": fullchain, "tls.key": key_pem, "ca.crt": b""}.items()},
    }
    core: Any = k8s.CoreV1Api(api)  # bodies as plain dicts, as users write manifests
    core.create_namespaced_secret(namespace, body)


def _shim_ingress(api: ApiClient, namespace: str, name: str, host: str, secret: str) -> None:
    """An Ingress annotated for cert-manager's ingress-shim only."""
    body = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": {
            "cert-manager.io/cluster-issuer": CM_ISSUER,
            "cert-manager.io/duration": "2160h"}},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": [host], "secretName": secret}],
                 "rules": [{"host": host, "http": {"paths": [{
                     "path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }
    networking: Any = k8s.NetworkingV1Api(api)
    networking.create_namespaced_ingress(namespace, body)


def _issued_count() -> int:
    return PEBBLE_LOG.read_text().count("Issued certificate serial")


def _tls(api: ApiClient, namespace: str, name: str) -> tuple[Any, bytes]:
    secret = read_secret(api, namespace, name)
    assert secret is not None
    return secret, base64.b64decode(secret.data["tls.crt"])


def test_cert_manager_secrets_are_adopted_without_a_new_order_then_renewed_with_replaces(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: Callable[..., Run],
    dns01_solver: DnsSolver, issuer: str,
) -> None:
    host = lab.host("cm")
    # What cert-manager left behind: its ACME account, and an RSA certificate it ordered from
    # the same CA (the lab's Pebble).
    account_key = keys.generate_key(KeyType.RSA_2048)
    cert_manager = AcmeEngine(lab["ACME_DIRECTORY"], account_key,
                              ca_bundle=lab["ACME_CA_BUNDLE"], email="ops@certbotk8s.test")
    _take_over_account(admin_api, issuer, _rsa_pkcs1(keys.key_to_pem(account_key)))
    theirs = cert_manager.issue(
        OrderRequest(hosts=(host,), challenge=ChallengeType.DNS01, key_type=KeyType.RSA_2048,
                     profile="default"),
        {ChallengeType.DNS01: dns01_solver})
    _cert_manager_secret(admin_api, namespace, "shop-tls", host, theirs.fullchain_pem,
                         _rsa_pkcs1(theirs.key_pem))
    _shim_ingress(admin_api, namespace, "shop", host, "shop-tls")

    # Step 3: plan shows no order for it.
    orders = _issued_count()
    plan = cli("plan", "-n", namespace)
    assert plan.code == 0, plan
    assert "ForeignCertificate" not in plan.out and "KeyTypeChanged" not in plan.out, plan

    # Step 4: the first pass adopts it as it is: no order, the same bytes, the issuer recorded.
    first = cli("renew", "--once", "-n", namespace)
    assert first.code == 0, first
    assert _issued_count() == orders, first
    secret, crt = _tls(admin_api, namespace, "shop-tls")
    assert crt == theirs.fullchain_pem
    assert certs.certificate_info(crt).key_type is KeyType.RSA_2048
    record = record_of(admin_api, namespace, "shop-tls")
    assert record[secret_meta.ISSUER] == issuer
    assert record[secret_meta.SERIAL] == theirs.info.serial
    events = events_for(admin_api, namespace, "shop")
    assert any(t == "Normal" and r == "AnnotationIgnored" and "duration" in m
               for t, r, m in events), events
    second = cli("renew", "--once", "-n", namespace)
    assert second.code == 0 and _issued_count() == orders, second  # still nothing to do

    # The normal renewal: the CA's ARI window opens (here: at once; read when the CA's
    # Retry-After has passed), the renewal names the adopted certificate in `replaces` and
    # takes the wanted key type.
    replaced = PEBBLE_LOG.read_text().count("is a replacement of")
    start = theirs.info.not_before
    set_ari_window(lab, theirs.fullchain_pem, start, start + timedelta(seconds=1))
    forget_ari_window(admin_api, namespace, "shop-tls")  # its Retry-After passed
    renewal = cli("renew", "--once", "-n", namespace)
    assert renewal.code == 0, renewal
    secret, crt = _tls(admin_api, namespace, "shop-tls")
    info = certs.certificate_info(crt)
    assert info.serial != theirs.info.serial and info.key_type is KeyType.ECDSA_P256
    assert PEBBLE_LOG.read_text().count("is a replacement of") == replaced + 1
    assert secret.metadata.labels[secret_meta.MANAGED_BY_LABEL] == "certbotk8s"
    assert ("Normal", "Renewed") in {(t, r) for t, r, _ in events_for(admin_api, namespace,
                                                                       "shop")}


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=80))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            _rsa_pkcs1(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())))


def test_a_certificate_from_another_ca_is_reported_and_replaced(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: Callable[..., Run],
) -> None:
    host = lab.host("cmforeign")
    crt, key = _self_signed(host)
    _cert_manager_secret(admin_api, namespace, "other-tls", host, crt, key)
    _shim_ingress(admin_api, namespace, "other", host, "other-tls")
    plan = cli("plan", "-n", namespace)
    assert plan.code == 0 and "ForeignCertificate" in plan.out, plan
    run = cli("renew", "--once", "-n", namespace)
    assert run.code == 0, run
    _, new = _tls(admin_api, namespace, "other-tls")
    assert new != crt and "Some Other CA" not in certs.certificate_info(new).issuer
    events = events_for(admin_api, namespace, "other")
    warned = [m for t, r, m in events if (t, r) == ("Warning", "ForeignCertificate")]
    assert warned and "CN=Some Other CA" in warned[0] and f"'{CM_ISSUER}'" in warned[0], events


def test_without_cert_manager_s_account_the_renewal_goes_without_replaces(
    lab: Lab, admin_api: ApiClient, namespace: str, cli: Callable[..., Run],
    dns01_solver: DnsSolver, issuer: str,
) -> None:
    """Step 2b skipped: the CA refuses `replaces` of a certificate another account ordered
    (`unauthorized`); the renewal is ordered again without it, and certbotk8s's own account
    key is kept (the refusal is not about the account)."""
    host = lab.host("cmnoacct")
    cert_manager = AcmeEngine(lab["ACME_DIRECTORY"], keys.generate_key(KeyType.RSA_2048),
                              ca_bundle=lab["ACME_CA_BUNDLE"], email="ops@certbotk8s.test")
    theirs = cert_manager.issue(
        OrderRequest(hosts=(host,), challenge=ChallengeType.DNS01, key_type=KeyType.RSA_2048,
                     profile="default"),
        {ChallengeType.DNS01: dns01_solver})
    _cert_manager_secret(admin_api, namespace, "shop-tls", host, theirs.fullchain_pem,
                         _rsa_pkcs1(theirs.key_pem))
    _shim_ingress(admin_api, namespace, "shop", host, "shop-tls")
    assert cli("renew", "--once", "-n", namespace).code == 0
    account = read_secret(admin_api, "certbotk8s", account_secret_name(issuer))
    assert account is not None  # registered on the first pass (ARI needs no account: later)
    start = theirs.info.not_before
    set_ari_window(lab, theirs.fullchain_pem, start, start + timedelta(seconds=1))
    forget_ari_window(admin_api, namespace, "shop-tls")  # its Retry-After passed
    replaced = PEBBLE_LOG.read_text().count("is a replacement of")
    renewal = cli("renew", "--once", "-n", namespace)
    assert renewal.code == 0, renewal
    assert "refused replaces" in renewal.out, renewal
    _, crt = _tls(admin_api, namespace, "shop-tls")
    assert certs.certificate_info(crt).serial != theirs.info.serial
    assert PEBBLE_LOG.read_text().count("is a replacement of") == replaced
    kept = read_secret(admin_api, "certbotk8s", account_secret_name(issuer))
    assert kept.data["account.key"] == account.data["account.key"]
