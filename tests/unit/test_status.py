"""`certbotk8s status` over fakes: a due certificate that waits shows core.renewal.lifecycle's
reason (WAIT column, `wait` in `-o json`) and when it may be ordered."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.commands import status
from certbotk8s.app.orders import PassDeps
from certbotk8s.core.model import SecretRef
from certbotk8s.core.renewal.backoff import FailureState
from certbotk8s.core.state import secret_meta

from . import hostile
from .factories import ingress, make_config, tls_entry
from .fakes import FakeLedger
from .hostile import NOW

CONFIG = make_config()
REF = SecretRef("shop", "web-tls")


def _deps() -> PassDeps:
    web = ingress("web", "shop", tls=[tls_entry("web-tls", "shop.example.com")])
    deps = hostile.pass_deps(CONFIG, [web], [], NOW)
    deps.ledger = FakeLedger()
    return deps


def _row(deps: PassDeps) -> status.StatusRow:
    with mock.patch.object(status, "_last_warning", lambda runtime, source: ""):
        rows = status.collect(SimpleNamespace(deps=deps), [])  # type: ignore[arg-type]
    (row,) = [r for r in rows if r.secret == str(REF)]
    return row


def test_a_due_certificate_nothing_holds_has_no_wait() -> None:
    row = _row(_deps())
    assert (row.next_renewal, row.wait) == ("now", "")
    assert row.as_dict()["wait"] == ""
    assert "WAIT" in status.render_table([row])


def test_a_certificate_backing_off_shows_why_and_its_next_attempt() -> None:
    deps = _deps()
    failure = FailureState(1, NOW + timedelta(minutes=1), "challenge failed")
    deps.records.update(REF, secret_meta.failure_annotations(failure, NOW))
    row = _row(deps)
    assert row.wait == "BackingOff" and row.next_renewal == "2025-02-01 00:01"
    assert row.why.startswith("backing off after 1 failed")
    assert row.last_error == "challenge failed"
    table = status.render_table([row])
    assert "BackingOff" in table.splitlines()[1]


def test_a_certificate_held_by_the_rate_limit_budget_shows_the_hold() -> None:
    deps = _deps()
    book = RenewalBook(CONFIG, deps.records, deps.ledger, save_every=0)
    book.authz_failed(["shop.example.com"] * 5, NOW - timedelta(minutes=5))
    book.flush(force=True)
    row = _row(deps)
    assert row.wait == "RateLimitHold", row
    assert row.why.startswith("rate-limit hold: ") and row.next_renewal not in ("now", "never")


def test_a_host_not_allowed_row_names_the_config_key_that_fixes_it() -> None:
    web = ingress("web", "shop", tls=[tls_entry("web-tls", "shop.example.com")])
    deps = hostile.pass_deps(make_config(tenants={"hostPatterns": {}}), [web], [], NOW)
    deps.ledger = FakeLedger()
    with mock.patch.object(status, "_last_warning", lambda runtime, source: ""):
        rows = status.collect(SimpleNamespace(deps=deps), [])  # type: ignore[arg-type]
    (row,) = [r for r in rows if r.why == "HostNotAllowed"]
    assert "tenants.hostPatterns.shop" in row.last_error
    assert "tenants.allowAnyHost: true" in row.last_error
