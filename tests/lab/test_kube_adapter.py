"""Kubernetes adapters (Secrets, account, Events, sources, RBAC) on the lab kube-apiserver."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import sources as kube
from certbotk8s.adapters.kube.client import Op, request
from certbotk8s.adapters.kube.secrets import account_secret_name
from certbotk8s.adapters.kube.sources import (
    KubeAccountStore,
    KubeEventRecorder,
    KubeSecretStore,
    KubeSourceReader,
    list_events,
)
from certbotk8s.core.errors import KubeConflict, KubeForbidden
from certbotk8s.core.model import ObjectRef
from certbotk8s.core.sources.resources import ApiResource
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

pytestmark = pytest.mark.lab

MANAGED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
KEY = b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nnot-a-real-cert\n-----END CERTIFICATE-----\n"


def name(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def admin_secret(admin_api: ApiClient, namespace: str, secret_name: str) -> Any:
    core: Any = k8s.CoreV1Api(admin_api)
    return core.read_namespaced_secret(secret_name, namespace)


def create_admin_secret(admin_api: ApiClient, namespace: str, body: dict[str, Any]) -> None:
    core: Any = k8s.CoreV1Api(admin_api)
    core.create_namespaced_secret(namespace, body)


@pytest.fixture
def store(controller_api: ApiClient) -> KubeSecretStore:
    return KubeSecretStore(controller_api)


# --- Secrets ------------------------------------------------------------------------------


def test_create_read_replace_and_stale_version(store: KubeSecretStore, namespace: str,
                                               admin_api: ApiClient) -> None:
    secret = name()
    v1 = store.write_tls(namespace, secret, KEY, CERT, MANAGED, {"certbotk8s.io/hosts": "a.test"},
                         None)
    stored = store.read(namespace, secret)
    assert stored is not None
    assert stored.type == "kubernetes.io/tls"
    assert stored.resource_version == v1
    assert stored.data == {"tls.crt": CERT, "tls.key": KEY}
    assert stored.labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE
    assert stored.annotations["certbotk8s.io/hosts"] == "a.test"

    v2 = store.write_tls(namespace, secret, b"key2", b"cert2", MANAGED,
                         {"certbotk8s.io/hosts": "b.test"}, v1)
    assert v2 != v1
    with pytest.raises(KubeConflict):
        store.write_tls(namespace, secret, b"key3", b"cert3", MANAGED, {}, v1)
    after = store.read(namespace, secret)
    assert after is not None
    assert after.resource_version == v2
    assert after.data == {"tls.crt": b"cert2", "tls.key": b"key2"}
    assert after.annotations["certbotk8s.io/hosts"] == "b.test"
    assert "cert" not in repr(after).lower().replace("certbotk8s", "")


def test_replace_conflict_at_the_server(store: KubeSecretStore, namespace: str,
                                        admin_api: ApiClient) -> None:
    """A write that races past the read check still loses at the API server (PUT with rv)."""
    secret = name()
    v1 = store.write_tls(namespace, secret, KEY, CERT, MANAGED, {}, None)
    core: Any = k8s.CoreV1Api(admin_api)
    core.patch_namespaced_secret(secret, namespace, {"metadata": {"labels": {"x": "y"}}},
                                 _content_type="application/merge-patch+json")
    with pytest.raises(KubeConflict):
        store.write_tls(namespace, secret, b"k", b"c", MANAGED, {}, v1)
    assert admin_secret(admin_api, namespace, secret).data["tls.key"] == b64(KEY)


def test_replace_keeps_foreign_metadata(store: KubeSecretStore, namespace: str,
                                        admin_api: ApiClient) -> None:
    secret = name()
    create_admin_secret(admin_api, namespace, {
        "metadata": {"name": secret, "labels": {"team": "web", **MANAGED},
                     "annotations": {"other.io/keep": "1", "certbotk8s.io/serial": "old"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(b"old"), "tls.key": b64(b"old"), "ca.crt": b64(b"ca")},
    })
    current = store.read(namespace, secret)
    assert current is not None
    store.write_tls(namespace, secret, KEY, CERT, MANAGED, {"certbotk8s.io/hosts": "a.test"},
                    current.resource_version)
    after = store.read(namespace, secret)
    assert after is not None
    assert after.annotations == {"other.io/keep": "1", "certbotk8s.io/hosts": "a.test"}
    assert after.labels["team"] == "web"
    assert after.data == {"tls.crt": CERT, "tls.key": KEY, "ca.crt": b"ca"}


def test_create_when_exists_conflicts(store: KubeSecretStore, namespace: str,
                                      admin_api: ApiClient) -> None:
    secret = name()
    create_admin_secret(admin_api, namespace, {
        "metadata": {"name": secret}, "type": "Opaque", "data": {"x": b64(b"theirs")}})
    with pytest.raises(KubeConflict) as raised:
        store.write_tls(namespace, secret, KEY, CERT, MANAGED, {}, None)
    assert "not-a-real" not in str(raised.value)
    assert admin_secret(admin_api, namespace, secret).data == {"x": b64(b"theirs")}


def test_read_missing_is_none(store: KubeSecretStore, namespace: str) -> None:
    assert store.read(namespace, "nothing-here") is None
    assert store.read(name("no-such-namespace"), "nothing-here") is None


def test_set_annotations(store: KubeSecretStore, namespace: str) -> None:
    secret = name()
    store.write_tls(namespace, secret, KEY, CERT, MANAGED, {"a.io/x": "1", "a.io/y": "2"}, None)
    store.set_annotations(namespace, secret, {"a.io/x": None, "a.io/z": "3"})
    stored = store.read(namespace, secret)
    assert stored is not None
    assert stored.annotations == {"a.io/y": "2", "a.io/z": "3"}
    store.set_annotations(namespace, "gone", {"a.io/x": "1"})  # not-found is a no-op


# --- ACME account ---------------------------------------------------------------------------


def test_account_store_round_trip(controller_api: ApiClient, namespace: str,
                                  admin_api: ApiClient) -> None:
    accounts = KubeAccountStore(controller_api, namespace)
    assert accounts.load("letsencrypt") is None
    accounts.save("letsencrypt", KEY, None)
    assert accounts.load("letsencrypt") == (KEY, None)
    accounts.save("letsencrypt", KEY, "https://ca.test/acct/1")
    assert accounts.load("letsencrypt") == (KEY, "https://ca.test/acct/1")

    raw = admin_secret(admin_api, namespace, "certbotk8s-acme-account-letsencrypt")
    assert raw.type == "Opaque"
    assert raw.metadata.labels == {**MANAGED, "certbotk8s.io/role": "acme-account"}
    assert raw.metadata.annotations["certbotk8s.io/account-uri"] == "https://ca.test/acct/1"
    assert set(raw.data) == {"account.key"}

    odd = "Let's Encrypt (staging)"
    accounts.save(odd, b"other", None)
    assert accounts.load(odd) == (b"other", None)
    assert account_secret_name(odd) != account_secret_name("let-s-encrypt-staging")


# --- Events ---------------------------------------------------------------------------------


def make_ingress(admin_api: ApiClient, namespace: str, ingress_name: str) -> ObjectRef:
    networking: Any = k8s.NetworkingV1Api(admin_api)
    created = networking.create_namespaced_ingress(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": ingress_name, "annotations": {"certbotk8s.io/enabled": "true"}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["a.certbotk8s.test"], "secretName": f"{ingress_name}-tls"}],
            "rules": [{"host": "a.certbotk8s.test"}],
        },
    })
    return ObjectRef("networking.k8s.io/v1", "Ingress", namespace, ingress_name,
                     created.metadata.uid)


def test_events_recorded_and_deduplicated(controller_api: ApiClient, admin_api: ApiClient,
                                          namespace: str) -> None:
    ingress = make_ingress(admin_api, namespace, name("web"))
    recorder = KubeEventRecorder(controller_api, instance="lab-test")
    recorder.record(ingress, "Warning", "InvalidAnnotation", "bad key-type: dsa")
    recorder.record(ingress, "Warning", "InvalidAnnotation", "bad key-type: dsa")
    recorder.record(ingress, "Normal", "Issued", "x" * 5000)

    rows = list_events(admin_api, ingress)
    assert [(r.type, r.reason) for r in rows] == [("Warning", "InvalidAnnotation"),
                                                  ("Normal", "Issued")]
    assert rows[0].message == "bad key-type: dsa"
    assert len(rows[1].message) == 1024
    assert all(r.time is not None for r in rows)

    core: Any = k8s.CoreV1Api(admin_api)
    events = core.list_namespaced_event(namespace).items
    warning = next(e for e in events if e.reason == "InvalidAnnotation")
    assert warning.count == 2
    assert warning.involved_object.uid == ingress.uid
    assert warning.source.component == "certbotk8s"
    assert warning.reporting_component == "certbotk8s"
    assert warning.reporting_instance == "lab-test"


def test_event_recorder_never_raises(controller_api: ApiClient) -> None:
    nowhere = ObjectRef("v1", "ConfigMap", name("no-such-namespace"), "x")
    KubeEventRecorder(controller_api).record(nowhere, "Normal", "Test", "goes nowhere")


# --- sources --------------------------------------------------------------------------------


def test_source_reader_returns_api_json(controller_api: ApiClient, admin_api: ApiClient,
                                        namespace: str) -> None:
    make_ingress(admin_api, namespace, "web")
    custom: Any = k8s.CustomObjectsApi(admin_api)
    custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "gateways", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "istio-gw"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["a.certbotk8s.test"],
            "tls": {"mode": "SIMPLE", "credentialName": "istio-cert"}}]},
    })
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "gateways", {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "api-gw"},
            "spec": {"gatewayClassName": "lab", "listeners": [{
                "name": "https", "port": 443, "protocol": "HTTPS",
                "hostname": "b.certbotk8s.test",
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "api-cert"}]}}]},
        })
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1beta1", namespace, "referencegrants", {
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "grant"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                               "namespace": "other"}],
                     "to": [{"group": "", "kind": "Secret"}]},
        })

    reader = KubeSourceReader(controller_api)
    for snapshot in (reader.list_sources([namespace]), reader.list_sources()):
        assert snapshot.missing_apis == ()
        ingresses = [o for o in snapshot.ingresses if meta(o)["namespace"] == namespace]
        istio = [o for o in snapshot.istio_gateways if meta(o)["namespace"] == namespace]
        gateways = [o for o in snapshot.gateway_api_gateways if meta(o)["namespace"] == namespace]
        grants = [o for o in snapshot.reference_grants if meta(o)["namespace"] == namespace]
        assert len(ingresses) == len(istio) == len(gateways) == len(grants) == 1

        ingress = ingresses[0]
        assert ingress["apiVersion"] == "networking.k8s.io/v1"
        assert ingress["kind"] == "Ingress"
        assert spec(ingress)["tls"][0]["secretName"] == "web-tls"
        assert spec(ingress)["ingressClassName"] == "nginx"
        assert meta(ingress)["annotations"]["certbotk8s.io/enabled"] == "true"
        assert meta(ingress)["uid"]

        assert str(istio[0]["apiVersion"]).startswith("networking.istio.io/")
        assert spec(istio[0])["servers"][0]["tls"]["credentialName"] == "istio-cert"
        listener = spec(gateways[0])["listeners"][0]
        assert listener["tls"]["certificateRefs"][0]["name"] == "api-cert"
        assert gateways[0]["kind"] == "Gateway"
        assert grants[0]["kind"] == "ReferenceGrant"
        assert spec(grants[0])["to"][0]["kind"] == "Secret"


def meta(obj: dict[str, object]) -> Any:
    return obj["metadata"]


def spec(obj: dict[str, object]) -> Any:
    return obj["spec"]


def test_source_reader_reports_missing_apis(admin_api: ApiClient, namespace: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A group the cluster does not serve: API discovery says so, and nothing is listed."""
    absent = ApiResource("mesh.example.com", "Gateway", "gateways", ("v1", "v1beta1"))
    monkeypatch.setattr(kube, "ISTIO_GATEWAYS", absent)
    snapshot = KubeSourceReader(admin_api).list_sources([namespace])
    assert snapshot.istio_gateways == ()
    assert snapshot.missing_apis == ("gateways.mesh.example.com",)


# --- RBAC -----------------------------------------------------------------------------------


def test_controller_identity_is_least_privilege(controller_api: ApiClient, admin_api: ApiClient,
                                                namespace: str) -> None:
    make_ingress(admin_api, namespace, "web")
    snapshot = KubeSourceReader(controller_api).list_sources()
    assert any(meta(o)["namespace"] == namespace for o in snapshot.ingresses)

    secret = name()
    KubeSecretStore(controller_api).write_tls(namespace, secret, KEY, CERT, MANAGED, {}, None)
    core: Any = k8s.CoreV1Api(controller_api)
    with pytest.raises(KubeForbidden) as raised:
        request(Op("delete", "secrets", namespace, secret),
                lambda: core.delete_namespaced_secret(secret, namespace, _preload_content=False))
    message = str(raised.value)
    assert "delete" in message
    assert "secrets" in message
    assert namespace in message
    assert admin_secret(admin_api, namespace, secret) is not None
