"""The controller's configuration as installed: its ConfigMap, for the CLI run from a laptop.

The kustomize manifests generate `certbotk8s-config-<hash>`, the chart
`<release>-certbotk8s-config` (`<release>-config` when the release name contains `certbotk8s`);
both carry the label `app.kubernetes.io/name: certbotk8s` and the key `config.yaml`.

Contract: a named ConfigMap that is not found is `None`; unnamed, the newest labelled one holding
`config.yaml` (kustomize leaves older generations behind), `None` when there is none. Other
failures (403, unreachable) raise `KubeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import JsonDict, Op, request
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.watch import WatchedResource, list_core

CONFIG_KEY = "config.yaml"
NAME_LABEL = "app.kubernetes.io/name=certbotk8s"
CONFIG_MAPS = WatchedResource("configmaps", "/api/v1/configmaps", "v1", "ConfigMap")


@dataclass(frozen=True)
class ConfigMapText:
    namespace: str
    name: str
    text: str


def read_config_map(api_client: ApiClient, namespace: str, name: str | None
                    ) -> ConfigMapText | None:
    if name:
        found = request(Op("get", "configmaps", namespace, name),
                        lambda: KubeRest(api_client).get(
                            rest.path("v1", "configmaps", namespace, name)))
        items = [found] if found is not None else []
    else:
        items = list_core(CONFIG_MAPS, api_client, namespace, label_selector=NAME_LABEL)
    usable = [i for i in items if isinstance(_text(i), str)]
    if not usable:
        return None
    newest = max(usable, key=lambda i: str((i.get("metadata") or {}).get("creationTimestamp")))
    text = _text(newest)
    assert text is not None
    return ConfigMapText(namespace, str((newest.get("metadata") or {}).get("name")), text)


def _text(item: JsonDict) -> str | None:
    data = item.get("data")
    value = data.get(CONFIG_KEY) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
