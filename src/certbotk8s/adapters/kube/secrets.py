"""TLS Secrets and the ACME account Secret, through the core/v1 API (SecretStore, AccountStore).

Writes are optimistic: create (409 is `KubeConflict`) or replace at a known resourceVersion
(409 is `KubeConflict`). A replace keeps what other tools put on the Secret (foreign labels,
annotations, owner references, extra data keys) and swaps only certbotk8s's part. Secret data
never appears in messages or logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import (
    MERGE_PATCH,
    JsonDict,
    Op,
    request,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeConflict, KubeError
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

log = logging.getLogger(__name__)

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"
OWN_ANNOTATION_PREFIX = "certbotk8s.io/"

ACCOUNT_SECRET_PREFIX = "certbotk8s-acme-account-"
ACCOUNT_KEY_KEY = "account.key"
ACCOUNT_URI_ANNOTATION = "certbotk8s.io/account-uri"
ACCOUNT_ISSUER_ANNOTATION = "certbotk8s.io/issuer"
ROLE_LABEL = "certbotk8s.io/role"
ROLE_ACME_ACCOUNT = "acme-account"

# Metadata a replace carries over from the current object (the rest is server-owned).
_KEPT_METADATA = frozenset({"name", "namespace", "labels", "annotations", "ownerReferences",
                            "finalizers", "resourceVersion"})


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _decode_data(namespace: str, name: str, value: object) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    if not isinstance(value, dict):
        return data
    for key, encoded in value.items():
        try:
            data[str(key)] = base64.b64decode(str(encoded or ""), validate=True)
        except (binascii.Error, ValueError) as e:
            raise KubeError(f"Secret {namespace}/{name}: key {key} is not valid base64") from e
    return data


def _encode(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def to_stored_secret(obj: JsonDict) -> StoredSecret:
    """A Secret in API JSON form as a StoredSecret (data decoded)."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    name = str(meta.get("name", ""))
    return StoredSecret(
        namespace=namespace,
        name=name,
        resource_version=str(meta.get("resourceVersion", "")),
        type=str(obj.get("type") or OPAQUE_TYPE),
        labels=_str_map(meta.get("labels")),
        annotations=_str_map(meta.get("annotations")),
        data=_decode_data(namespace, name, obj.get("data")),
    )


class _SecretApi:
    """Raw Secret operations shared by the TLS store and the account store."""

    def __init__(self, api_client: ApiClient, field_manager: str) -> None:
        self._api = api_client
        self._rest = KubeRest(api_client)
        self._manager = (("fieldManager", field_manager),)

    def get(self, namespace: str, name: str) -> JsonDict | None:
        return request(
            Op("get", "secrets", namespace, name),
            lambda: self._rest.get(rest.secrets(namespace, name)),
        )

    def put(self, namespace: str, name: str, secret_type: str, data: dict[str, bytes],
            labels: dict[str, str], annotations: dict[str, str],
            resource_version: str | None) -> str:
        """Create (rv None) or replace at `resource_version`; returns the new resourceVersion.

        On replace, annotations under `certbotk8s.io/` that are not in `annotations` are
        dropped; every other label, annotation, data key and metadata field is kept.
        """
        encoded = {key: _encode(value) for key, value in data.items()}
        if resource_version is None:
            body: JsonDict = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                             "annotations": dict(annotations)},
                "type": secret_type,
                "data": encoded,
            }
            op = Op("create", "secrets", namespace, name)
            created = request(op, lambda: self._rest.post(rest.secrets(namespace), body,
                                                          self._manager))
            if created is None:
                raise KubeError(f"{op} failed: namespace {namespace} not found")
            return str(created["metadata"]["resourceVersion"])

        current = self.get(namespace, name)
        if current is None:
            raise KubeConflict(f"conflict: Secret {namespace}/{name} was deleted meanwhile")
        meta: JsonDict = {key: value for key, value in (current.get("metadata") or {}).items()
                          if key in _KEPT_METADATA}
        kept = {k: v for k, v in _str_map(meta.get("annotations")).items()
                if not k.startswith(OWN_ANNOTATION_PREFIX)}
        meta["annotations"] = {**kept, **annotations}
        meta["labels"] = {**_str_map(meta.get("labels")), **labels}
        # The caller's version, not the one just read: if the Secret changed since the caller
        # read it (before or after the GET above), the API server answers 409 (`KubeConflict`).
        meta["resourceVersion"] = resource_version
        merged_data = dict(current.get("data") or {})
        merged_data.update(encoded)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": current.get("type") or secret_type,
            "data": merged_data,
        }
        if body["type"] != secret_type:
            raise KubeError(f"Secret {namespace}/{name} has type {body['type']}, "
                            f"not {secret_type}; not replacing it")
        op = Op("update", "secrets", namespace, name)
        replaced = request(op, lambda: self._rest.put(rest.secrets(namespace, name), body,
                                                      self._manager))
        if replaced is None:
            raise KubeConflict(f"conflict: Secret {namespace}/{name} was deleted meanwhile")
        return str(replaced["metadata"]["resourceVersion"])

    def patch_annotations(self, namespace: str, name: str,
                          annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"annotations": dict(annotations)}}
        request(
            Op("patch", "secrets", namespace, name),
            lambda: self._rest.patch(rest.secrets(namespace, name), body, MERGE_PATCH,
                                     self._manager),
        )


class KubeSecretStore:
    """SecretStore on the Kubernetes API (see `core.ports.SecretStore` for the contract)."""

    def __init__(self, api_client: ApiClient, field_manager: str = "certbotk8s") -> None:
        self._secrets = _SecretApi(api_client, field_manager)

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        obj = self._secrets.get(namespace, name)
        return None if obj is None else to_stored_secret(obj)

    def write_tls(
        self,
        namespace: str,
        name: str,
        key_pem: bytes,
        fullchain_pem: bytes,
        labels: dict[str, str],
        annotations: dict[str, str],
        resource_version: str | None,
    ) -> str:
        data = {TLS_CERT_KEY: fullchain_pem, TLS_KEY_KEY: key_pem}
        return self._secrets.put(namespace, name, TLS_TYPE, data, labels, annotations,
                                 resource_version)

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        self._secrets.patch_annotations(namespace, name, annotations)


_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


def account_secret_name(issuer: str) -> str:
    """`certbotk8s-acme-account-<issuer>`, made a valid object name (hash suffix if altered)."""
    slug = _NAME_UNSAFE.sub("-", issuer.lower()).strip("-")
    if slug != issuer or len(slug) > 40:
        digest = hashlib.sha256(issuer.encode()).hexdigest()[:8]
        slug = f"{slug[:40].rstrip('-')}-{digest}".lstrip("-")
    return ACCOUNT_SECRET_PREFIX + slug


class KubeAccountStore:
    """AccountStore: one Opaque Secret per issuer in the controller's namespace."""

    def __init__(self, api_client: ApiClient, namespace: str,
                 field_manager: str = "certbotk8s") -> None:
        self._secrets = _SecretApi(api_client, field_manager)
        self._namespace = namespace

    def load(self, issuer: str) -> tuple[bytes, str | None] | None:
        obj = self._secrets.get(self._namespace, account_secret_name(issuer))
        if obj is None:
            return None
        stored = to_stored_secret(obj)
        key_pem = stored.data.get(ACCOUNT_KEY_KEY)
        if not key_pem:
            return None
        return key_pem, stored.annotations.get(ACCOUNT_URI_ANNOTATION) or None

    def save(self, issuer: str, key_pem: bytes, account_uri: str | None) -> None:
        name = account_secret_name(issuer)
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ROLE_LABEL: ROLE_ACME_ACCOUNT}
        annotations = {ACCOUNT_ISSUER_ANNOTATION: issuer}
        if account_uri:
            annotations[ACCOUNT_URI_ANNOTATION] = account_uri
        for attempt in range(3):
            current = self._secrets.get(self._namespace, name)
            version = None if current is None else str(current["metadata"]["resourceVersion"])
            try:
                self._secrets.put(self._namespace, name, OPAQUE_TYPE,
                                  {ACCOUNT_KEY_KEY: key_pem}, labels, annotations, version)
                return
            except KubeConflict:
                if attempt == 2:
                    raise
                log.info("account Secret %s/%s changed while saving; retrying",
                         self._namespace, name)
