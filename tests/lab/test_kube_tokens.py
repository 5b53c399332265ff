"""KubeTokenStore: HTTP-01 tokens shared between replicas through one Secret (lab apiserver)."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.http01.responder import CHALLENGE_PREFIX, Http01Responder
from certbotk8s.adapters.kube.sources import load_api_client
from certbotk8s.adapters.kube.tokens import ROLE_HTTP01_TOKENS, ROLE_LABEL, KubeTokenStore
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from tests.lab.conftest import Lab

pytestmark = pytest.mark.lab

NAMESPACE = "certbotk8s"


def token() -> str:
    return uuid.uuid4().hex + "_-X"


def eventually(check: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture
def secret_name(admin_api: ApiClient) -> Iterator[str]:
    name = f"tokens-{uuid.uuid4().hex[:8]}"
    yield name
    core: Any = k8s.CoreV1Api(admin_api)
    try:
        core.delete_namespaced_secret(name, NAMESPACE)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def second_api(lab: Lab, controller_api: ApiClient) -> Iterator[ApiClient]:
    """Another client with the controller identity: the second replica."""
    api = load_api_client(lab["CONTROLLER_KUBECONFIG"])
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def store_a(controller_api: ApiClient, secret_name: str) -> KubeTokenStore:
    return KubeTokenStore(controller_api, NAMESPACE, secret_name)


@pytest.fixture
def watcher_b(second_api: ApiClient, secret_name: str) -> Iterator[KubeTokenStore]:
    """Replica B answering from its watch only (no direct-read fallback)."""
    store = KubeTokenStore(second_api, NAMESPACE, secret_name, fallback_per_second=0)
    with store:
        assert store.wait_synced(5)
        yield store


def test_secret_created_labelled_and_opaque(store_a: KubeTokenStore, admin_api: ApiClient,
                                            secret_name: str) -> None:
    t = token()
    store_a.put(t, f"{t}.thumbprint")
    core: Any = k8s.CoreV1Api(admin_api)
    secret = core.read_namespaced_secret(secret_name, NAMESPACE)
    assert secret.type == "Opaque"
    assert secret.metadata.labels == {MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                                      ROLE_LABEL: ROLE_HTTP01_TOKENS}
    assert set(secret.data) == {t}


def test_watch_propagates_put_and_delete(store_a: KubeTokenStore,
                                         watcher_b: KubeTokenStore) -> None:
    t = token()
    assert watcher_b.get(t) is None
    store_a.put(t, f"{t}.thumb")
    assert eventually(lambda: watcher_b.get(t) == f"{t}.thumb")
    store_a.delete(t)
    assert eventually(lambda: watcher_b.get(t) is None)
    store_a.delete(t)  # already gone: fine


def test_a_delayed_delete_goes_with_the_next_put(controller_api: ApiClient,
                                                 watcher_b: KubeTokenStore,
                                                 secret_name: str) -> None:
    # The controller's store: an ended order's token goes with the next order's write.
    store = KubeTokenStore(controller_api, NAMESPACE, secret_name, delete_delay=60.0)
    ended, nxt, alone = token(), token(), token()
    store.put(ended, "an order that ended")
    assert eventually(lambda: watcher_b.get(ended) == "an order that ended")
    store.delete(ended)  # waits: nothing is written yet
    store.put(nxt, "the next order")
    assert eventually(lambda: watcher_b.get(nxt) == "the next order")
    assert watcher_b.get(ended) is None  # removed by that same write
    store.delete(alone)  # never put: its removal is a no-op write
    store.delete(nxt)
    store.flush_deletes()  # what the timer (or stop) sends when no put comes
    assert eventually(lambda: watcher_b.get(nxt) is None)


def test_watch_survives_secret_deletion(store_a: KubeTokenStore, watcher_b: KubeTokenStore,
                                        admin_api: ApiClient, secret_name: str) -> None:
    t1, t2 = token(), token()
    store_a.put(t1, "one")
    assert eventually(lambda: watcher_b.get(t1) == "one")
    core: Any = k8s.CoreV1Api(admin_api)
    core.delete_namespaced_secret(secret_name, NAMESPACE)
    assert eventually(lambda: watcher_b.get(t1) is None)
    store_a.put(t2, "two")  # recreates it
    assert eventually(lambda: watcher_b.get(t2) == "two")


def test_fallback_reads_directly_on_a_miss(store_a: KubeTokenStore, second_api: ApiClient,
                                           secret_name: str) -> None:
    b = KubeTokenStore(second_api, NAMESPACE, secret_name)  # no watch at all
    t = token()
    assert b.get(t) is None  # Secret does not exist yet
    store_a.put(t, "ka")
    assert b.get(t) == "ka"
    store_a.delete(t)
    assert b.get(t) is None


def test_fallback_is_rate_limited(store_a: KubeTokenStore, second_api: ApiClient,
                                  secret_name: str) -> None:
    b = KubeTokenStore(second_api, NAMESPACE, secret_name, fallback_per_second=2)
    t = token()
    store_a.put(t, "ka")
    assert [b.get(token()), b.get(token())] == [None, None]  # misses use up the budget
    assert b.get(t) is None  # no read allowed now
    time.sleep(0.6)
    assert b.get(t) == "ka"


def test_concurrent_puts_lose_nothing(store_a: KubeTokenStore, second_api: ApiClient,
                                      watcher_b: KubeTokenStore, secret_name: str) -> None:
    b = KubeTokenStore(second_api, NAMESPACE, secret_name)
    tokens = {token(): f"v{i}" for i in range(40)}
    items = list(tokens.items())
    errors: list[BaseException] = []

    def put_all(store: KubeTokenStore, part: list[tuple[str, str]]) -> None:
        try:
            for t, v in part:
                store.put(t, v)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=put_all, args=(store, items[i::4]))
               for i, store in enumerate((store_a, b, store_a, b))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    assert eventually(lambda: all(watcher_b.get(t) == v for t, v in tokens.items()), 3.0)
    fresh = KubeTokenStore(second_api, NAMESPACE, secret_name, fallback_per_second=1000)
    assert all(fresh.get(t) == v for t, v in tokens.items())


def test_invalid_tokens_refused(store_a: KubeTokenStore) -> None:
    for bad in ("", "a/b", "a.b", "a b", "x" * 254, "tök"):
        with pytest.raises(ValueError):
            store_a.put(bad, "ka")
        with pytest.raises(ValueError):
            store_a.delete(bad)
        assert store_a.get(bad) is None


def test_responder_on_replica_b_serves_token_put_on_a(store_a: KubeTokenStore,
                                                      watcher_b: KubeTokenStore,
                                                      second_api: ApiClient,
                                                      secret_name: str) -> None:
    b = KubeTokenStore(second_api, NAMESPACE, secret_name).start()
    try:
        assert b.wait_synced(5)
        with Http01Responder(b, "127.0.0.1", 0) as responder:
            t = token()
            store_a.put(t, f"{t}.thumb")  # fetched at once: watch or direct read answers
            conn = http.client.HTTPConnection("127.0.0.1", responder.port, timeout=5)
            try:
                conn.request("GET", CHALLENGE_PREFIX + t)
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, f"{t}.thumb".encode())
            finally:
                conn.close()
    finally:
        b.stop()


def test_remove_stale_takes_only_tokens_seen_at_the_previous_sweep(
        store_a: KubeTokenStore, watcher_b: KubeTokenStore) -> None:
    left, fresh = token(), token()
    store_a.put(left, "left by an order nobody finishes")
    assert store_a.remove_stale() == []  # first look: nothing is known to be old yet
    store_a.put(fresh, "an order running now")
    assert store_a.remove_stale() == [left]
    assert eventually(lambda: watcher_b.get(left) is None)  # gone for every replica
    assert watcher_b.get(fresh) == "an order running now"
    store_a.delete(fresh)  # its order ended: a later sweep has nothing to take
    assert store_a.remove_stale() == []
