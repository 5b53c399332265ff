"""The budget and backoff book shared by both modes (app/budget.py) over a fake ledger and
Secret store: restart rebuilds it, shared orders back off per Secret, replaces is exempt."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from certbotk8s.app.budget import RenewalBook
from certbotk8s.core import ledger, ratelimit, secret_meta
from certbotk8s.core.backoff import FailureState
from certbotk8s.core.model import SecretRef
from certbotk8s.core.plan import Action, ActionKind
from certbotk8s.core.ports import StoredSecret
from certbotk8s.core.reasons import Reason, ReasonCode
from tests.unit.factories import T0, desired, make_config, observed_for

NOW = T0 + timedelta(days=10)
REASON = Reason(ReasonCode.SECRET_MISSING, "test")


class FakeLedger:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        return dict(self.values)

    def save(self, values: dict[str, Any]) -> None:
        self.values.update(values)


class FakeSecrets:
    def __init__(self) -> None:
        self.annotations: dict[tuple[str, str], dict[str, str | None]] = {}

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        return None

    def write_tls(self, namespace: str, name: str, key_pem: bytes, fullchain_pem: bytes,
                  labels: dict[str, str], annotations: dict[str, str],
                  resource_version: str | None) -> str:
        return "1"

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None:
        self.annotations.setdefault((namespace, name), {}).update(annotations)

    def list_managed(self, namespaces: Sequence[str] = ()) -> list[StoredSecret]:
        return []


def book(store: FakeLedger, secrets: FakeSecrets | None = None) -> RenewalBook:
    return RenewalBook(make_config(), secrets or FakeSecrets(), store, save_every=0,
                       jitter=lambda: 1.0)


def test_orders_and_failed_authorizations_survive_a_restart() -> None:
    store = FakeLedger()
    first = book(store)
    first.order_placed("team-a", NOW, exempt=False)
    first.order_placed("team-a", NOW, exempt=True)
    first.authz_failed(["bad.example.com"], NOW)
    restarted = book(store)
    restarted.load()
    loaded = ledger.from_json(store.values)
    assert [(o.namespace, o.exempt) for o in loaded.orders] == [("team-a", False),
                                                                ("team-a", True)]
    assert [f.identifier for f in loaded.failed_authz] == ["bad.example.com"]
    # the restarted book holds an order for an identifier that failed 5 times
    for _ in range(4):
        restarted.authz_failed(["bad.example.com"], NOW)
    d = desired("bad.example.com")
    hold = restarted.check(Action(ActionKind.ISSUE, d, REASON), None, NOW)
    assert hold is not None and hold.limit == ratelimit.LIMIT_FAILED_AUTHZ


def test_failure_state_lives_on_the_secret_or_in_the_ledger_when_there_is_none() -> None:
    store, secrets = FakeLedger(), FakeSecrets()
    b = book(store, secrets)
    d = desired("a.example.com")
    observed = observed_for(d)
    state = b.failed(d.secret, observed, NOW, "challenge failed")
    assert state == FailureState(1, NOW + timedelta(minutes=1), "challenge failed")
    written = secrets.annotations[(d.secret.namespace, d.secret.name)]
    assert written[secret_meta.FAILURES] == "1"
    # a Secret that does not exist yet: the ledger keeps it, a restart still backs off
    missing = desired("b.example.com", secret=SecretRef("default", "b-tls"))
    b.failed(missing.secret, None, NOW, "dns down")
    again = book(store)
    again.load()
    assert again.failure_state(missing.secret, None).waiting(NOW + timedelta(seconds=30))
    again.succeeded(missing.secret)
    assert not book(store).failure_state(missing.secret, None).waiting(NOW)


def test_a_restarted_book_reads_backoff_from_the_secret_annotations() -> None:
    d = desired("a.example.com")
    observed = observed_for(d)
    state = FailureState(2, NOW + timedelta(minutes=10), "boom")
    observed.annotations.update(secret_meta.failure_annotations(state, NOW))
    assert book(FakeLedger()).failure_state(d.secret, observed) == state


def test_only_an_order_that_sends_replaces_is_exempt() -> None:
    d = desired("a.example.com")
    observed = observed_for(d)
    renew = Action(ActionKind.RENEW, d, REASON)
    assert RenewalBook.sends_replaces(renew, observed)
    assert not RenewalBook.sends_replaces(Action(ActionKind.ISSUE, d, REASON), None)
    other_hosts = desired("a.example.com", "b.example.com")
    assert not RenewalBook.sends_replaces(Action(ActionKind.RENEW, other_hosts, REASON),
                                          observed)
    other_issuer = desired("a.example.com", issuer="staging")
    assert not RenewalBook.sends_replaces(Action(ActionKind.RENEW, other_issuer, REASON),
                                          observed)
