"""The HTTP-01 token store reads through the one informer: its cache follows the watch of the
tokens Secret (added, changed, deleted), a re-list after 410 replaces it, and `stop` forgets it."""

from __future__ import annotations

import base64
from typing import Any, cast

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.tokens import KubeTokenStore
from tests.unit.apiserver import FakeApiServer

NAMESPACE, NAME = "certbotk8s", "certbotk8s-http01-tokens"


def _secret(version: str, **tokens: str) -> dict[str, Any]:
    return {"metadata": {"namespace": NAMESPACE, "name": NAME, "resourceVersion": version},
            "data": {t: base64.b64encode(v.encode()).decode() for t, v in tokens.items()}}


def test_the_cache_follows_the_watch_and_a_410_relists() -> None:
    api = FakeApiServer(objects={"secrets": [_secret("5", tok1="ka1")]})
    store = KubeTokenStore(cast(ApiClient, api), NAMESPACE, fallback_per_second=0)
    with store:
        assert store.wait_synced(10)
        assert store.get("tok1") == "ka1"
        listing = next(q for path, q in api.requests if "watch" not in q)
        assert listing["resourceVersion"] == "0"  # first list from the watch cache
        assert listing["fieldSelector"] == f"metadata.name={NAME}"
        assert api.wait_watches(1)
        watch = api.watches[0]
        assert watch.push({"type": "MODIFIED", "object": _secret("6", tok1="ka1", tok2="ka2")})
        assert store.get("tok2") == "ka2"
        assert watch.push({"type": "DELETED", "object": _secret("7")})
        assert store.get("tok1") is None
        api.objects["secrets"] = [_secret("9", tok3="ka3")]
        watch.fail({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        assert api.wait_watches(2)  # listed again, then watching from the new list
        assert store.get("tok3") == "ka3"
        assert [q["resourceVersion"] for _, q in api.requests if "watch" in q] == ["10", "10"]
    assert store.get("tok3") is None  # stopped: nothing cached, no direct read allowed
