"""Small builders for the JSON-form Kubernetes objects, configs and certificates of unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certbotk8s.core.config.settings import Config, parse_config
from certbotk8s.core.model import (
    CertificateInfo,
    CertificateSpec,
    ChallengeType,
    DesiredCertificate,
    KeyType,
    ObjectRef,
    ObservedSecret,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.state import secret_meta

Obj = dict[str, Any]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
OPT_IN = {"certbotk8s.io/enabled": "true"}


def make_config(**overrides: Any) -> Config:
    """A valid config with issuers `le` (default) and `staging`, DNS provider `bind`."""
    data: dict[str, Any] = {
        "defaultIssuer": "le",
        "issuers": {
            "le": {"directory": "https://acme.example/dir",
                   "profiles": ["classic", "tlsserver", "shortlived", "custom"]},
            "staging": {"directory": "https://staging.example/dir"},
        },
        "dnsProviders": {
            "bind": {
                "type": "rfc2136",
                "server": "127.0.0.1:5353",
                "tsig": {"keyName": "k.", "secretRef": {"name": "tsig", "key": "secret"}},
            }
        },
    }
    data.update(overrides)
    return parse_config(data)


def _meta(name: str, namespace: str, annotations: dict[str, str] | None) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "annotations": dict(OPT_IN if annotations is None else annotations),
    }


def ingress(
    name: str = "web",
    namespace: str = "default",
    *,
    tls: list[Obj] | None = None,
    rules_hosts: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    ingress_class: str | None = None,
) -> Obj:
    """An Ingress; `annotations` None means just the opt-in annotation."""
    spec: Obj = {}
    if ingress_class is not None:
        spec["ingressClassName"] = ingress_class
    if tls is not None:
        spec["tls"] = tls
    if rules_hosts is not None:
        spec["rules"] = [{"host": h, "http": {"paths": []}} for h in rules_hosts]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(name, namespace, annotations),
        "spec": spec,
    }


def tls_entry(secret: str | None, *hosts: str) -> Obj:
    entry: Obj = {"hosts": list(hosts)}
    if secret is not None:
        entry["secretName"] = secret
    return entry


def istio_server(
    *hosts: str,
    credential: str | None = None,
    server_certificate: str | None = None,
    protocol: str = "HTTPS",
    mode: str | None = None,
    port_name: str = "https",
    number: int = 443,
) -> Obj:
    tls: Obj = {}
    if mode is not None:
        tls["mode"] = mode
    if credential is not None:
        tls["credentialName"] = credential
    if server_certificate is not None:
        tls["serverCertificate"] = server_certificate
        tls["privateKey"] = server_certificate.replace("tls.crt", "tls.key")
    server: Obj = {
        "port": {"number": number, "name": port_name, "protocol": protocol},
        "hosts": list(hosts),
    }
    if tls:
        server["tls"] = tls
    return server


def istio_gateway(
    name: str = "gw",
    namespace: str = "istio-system",
    *,
    servers: list[Obj],
    annotations: dict[str, str] | None = None,
    api_version: str = "networking.istio.io/v1",
) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": "Gateway",
        "metadata": _meta(name, namespace, annotations),
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
    }


def listener(
    name: str,
    hostname: str | None,
    *refs: Obj,
    protocol: str = "HTTPS",
    mode: str | None = None,
) -> Obj:
    lst: Obj = {"name": name, "port": 443 if protocol != "HTTP" else 80, "protocol": protocol}
    if hostname is not None:
        lst["hostname"] = hostname
    if protocol != "HTTP":
        tls: Obj = {"certificateRefs": list(refs)}
        if mode is not None:
            tls["mode"] = mode
        lst["tls"] = tls
    return lst


def secret_ref(name: str, namespace: str | None = None, **extra: str) -> Obj:
    ref: Obj = {"name": name, **extra}
    if namespace is not None:
        ref["namespace"] = namespace
    return ref


def gateway(
    name: str = "gw",
    namespace: str = "apps",
    *,
    listeners: list[Obj],
    annotations: dict[str, str] | None = None,
    api_version: str = "gateway.networking.k8s.io/v1",
) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": "Gateway",
        "metadata": _meta(name, namespace, annotations),
        "spec": {"gatewayClassName": "istio", "listeners": listeners},
    }


def reference_grant(
    namespace: str,
    from_namespace: str,
    *,
    to_name: str | None = None,
    from_kind: str = "Gateway",
    to_kind: str = "Secret",
) -> Obj:
    to: Obj = {"group": "", "kind": to_kind}
    if to_name is not None:
        to["name"] = to_name
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "allow", "namespace": namespace},
        "spec": {
            "from": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": from_kind,
                    "namespace": from_namespace,
                }
            ],
            "to": [to],
        },
    }


# -- certificates -------------------------------------------------------------------------


def desired(
    *hosts: str,
    secret: SecretRef | None = None,
    issuer: str = "le",
    key_type: KeyType = KeyType.ECDSA_P256,
    profile: str | None = None,
    renew_before: timedelta | None = None,
    challenge: ChallengeType = ChallengeType.HTTP01,
    source_name: str = "web",
) -> DesiredCertificate:
    secret = secret or SecretRef("default", "web-tls")
    return DesiredCertificate(
        secret=secret,
        spec=CertificateSpec(
            hosts=tuple(sorted(hosts or ("a.example.com",))),
            issuer=issuer,
            challenge=challenge,
            key_type=key_type,
            profile=profile,
            renew_before=renew_before,
        ),
        # an Ingress lives where its Secret does
        source=ObjectRef("networking.k8s.io/v1", "Ingress", secret.namespace, source_name),
        source_kind=SourceKind.INGRESS,
    )


def cert_info(
    *sans: str,
    not_before: datetime = T0,
    lifetime: timedelta = timedelta(days=90),
    key_type: KeyType | None = KeyType.ECDSA_P256,
) -> CertificateInfo:
    return CertificateInfo(
        sans=tuple(sans or ("a.example.com",)),
        not_before=not_before,
        not_after=not_before + lifetime,
        serial="0a1b",
        key_type=key_type,
        ari_cert_id="aki.serial",
    )


def observed_for(
    d: DesiredCertificate,
    info: CertificateInfo | None = None,
    *,
    managed: bool = True,
    key_matches: bool = True,
    annotations: dict[str, str] | None = None,
) -> ObservedSecret:
    """A Secret as certbotk8s would have written it for `d` holding `info` (default: matching)."""
    info = info if info is not None else cert_info(*d.spec.hosts)
    if annotations is None:
        annotations = secret_meta.build_secret_metadata(d, info, info.not_before).annotations
    return ObservedSecret(
        ref=d.secret,
        managed=managed,
        resource_version="1",
        certificate=info,
        key_matches=key_matches,
        recorded=annotations,
    )
