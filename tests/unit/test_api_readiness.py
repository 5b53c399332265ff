"""Reading the API server's /readyz?verbose: which checks fail, and the cause in plain words."""

from __future__ import annotations

from http.client import RemoteDisconnected

import pytest
import urllib3

from certbotk8s.adapters.kube.client import (
    NO_READ_RETRIES,
    NoRetryAfterTimeout,
    not_ready_cause,
    readiness_failures,
)

ETCD_DOWN = """[+]ping ok
[+]log ok
[-]etcd failed: reason withheld
[+]etcd-readiness ok
[+]poststarthook/start-apiserver-admission-initializer ok
[-]poststarthook/rbac/bootstrap-roles failed: reason withheld
readyz check failed
"""


def test_failed_checks_are_named_and_passing_ones_are_not() -> None:
    assert readiness_failures(ETCD_DOWN) == ["etcd", "poststarthook/rbac/bootstrap-roles"]
    assert readiness_failures("[+]ping ok\nok\n") == []
    assert readiness_failures("<html>[-]<script> failed</html>") == []  # not a check line


def test_a_storage_failure_is_named_as_such_else_the_checks_are_listed() -> None:
    assert not_ready_cause(["etcd", "etcd-readiness"]) == (
        "the API server cannot reach its storage (readyz: etcd failed)")
    assert not_ready_cause(["poststarthook/rbac/bootstrap-roles"]) == (
        "the API server is not ready (readyz: poststarthook/rbac/bootstrap-roles failed)")


def test_a_request_left_unanswered_is_not_sent_again_but_a_dropped_connection_is() -> None:
    pool = urllib3.HTTPConnectionPool("127.0.0.1", 1)
    timeout = urllib3.exceptions.ReadTimeoutError(pool, "/api", "Read timed out.")
    with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
        NO_READ_RETRIES.increment("GET", "/api", error=timeout, _pool=pool)
    assert raised.value.reason is timeout
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.",
                                               RemoteDisconnected("closed"))
    again = NO_READ_RETRIES.increment("GET", "/api", error=dropped, _pool=pool)
    assert isinstance(again, NoRetryAfterTimeout) and again.total == 2  # one of three used
    refused = urllib3.exceptions.NewConnectionError(
        urllib3.connection.HTTPConnection("127.0.0.1", 1), "Connection refused")
    assert NO_READ_RETRIES.increment("PUT", "/api", error=refused, _pool=pool).connect == 1
