"""`renew --once` (app.renewal_pass.run_pass) lists the managed Secrets once per pass: host
ownership, the rate-limit budget's issued-7d history and `status` share that one list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from certbotk8s.app.renewal_pass import PassDeps, run_pass
from certbotk8s.core import secret_meta
from certbotk8s.core.model import ObjectRef
from certbotk8s.core.ports import SourceSnapshot, StoredSecret
from tests.unit.factories import make_config


class NoSources:
    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        return SourceSnapshot()


class CountingSecrets:
    """One managed Secret whose source is gone; counts the lists."""

    def __init__(self) -> None:
        self.lists = 0

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        return None

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        raise AssertionError("nothing is due: nothing may be written")

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        raise AssertionError("nothing is due: nothing may be annotated")

    def list_managed(self, namespaces: Sequence[str] = ()) -> list[StoredSecret]:
        self.lists += 1
        return [StoredSecret("team-a", "old-tls", "7", "kubernetes.io/tls",
                             labels={secret_meta.MANAGED_BY_LABEL: secret_meta.MANAGED_BY_VALUE},
                             annotations={secret_meta.HOSTS: "old.example.com"})]


class NoEvents:
    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None:
        raise AssertionError(f"no Event expected: {reason} {message}")


def test_one_pass_lists_the_managed_secrets_once() -> None:
    secrets = CountingSecrets()
    unused: Any = None  # no order is due, so no CA and no solver is touched
    deps = PassDeps(make_config(), NoSources(), secrets, NoEvents(), unused, unused)
    report = run_pass(deps)
    assert secrets.lists == 1
    assert [s.name for s in report.survey.managed] == ["old-tls"]
    assert not report.outcomes and not report.failed
