"""Read and damage the controller's certificate records in the lab (its namespace)."""

from __future__ import annotations

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.records import KubeRecordStore
from certbotk8s.core.model import SecretRef

CONTROLLER_NAMESPACE = "certbotk8s"  # the lab config's controllerNamespace


def record_of(api: ApiClient, namespace: str, name: str) -> dict[str, str]:
    """The controller's record of Secret `namespace/name` ({} when it has none)."""
    return KubeRecordStore(api, CONTROLLER_NAMESPACE).load().get(SecretRef(namespace, name), {})


def drop_record(api: ApiClient, namespace: str, name: str) -> None:
    KubeRecordStore(api, CONTROLLER_NAMESPACE).save({SecretRef(namespace, name): None})


def set_record(api: ApiClient, namespace: str, name: str, values: dict[str, str]) -> None:
    """Change these keys of the record (as time passing would: the lab cannot wait hours)."""
    store = KubeRecordStore(api, CONTROLLER_NAMESPACE)
    ref = SecretRef(namespace, name)
    store.save({ref: {**store.load().get(ref, {}), **values}})
