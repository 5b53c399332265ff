"""Reading the API server's /readyz?verbose: which checks fail, and the cause in plain words."""

from __future__ import annotations

from certbotk8s.adapters.kube_client import not_ready_cause, readiness_failures

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
