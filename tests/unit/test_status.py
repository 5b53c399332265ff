"""`certbotk8s status` and `plan -o` over fakes: a due certificate that waits shows
core.renewal.lifecycle's reason and when it may be ordered; machine output and the detail view."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import yaml

from certbotk8s.adapters.kube.events import EventRow
from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.commands import detail, output, plan_view, status
from certbotk8s.app.orders import PassDeps, survey
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


def test_machine_output_has_times_numbers_and_codes_not_display_strings() -> None:
    deps = _deps()
    failure = FailureState(2, NOW + timedelta(minutes=10), "challenge failed")
    deps.records.update(REF, secret_meta.failure_annotations(failure, NOW))
    doc = _row(deps).machine()
    assert doc["state"] == "waiting" and doc["wait"] == "BackingOff"
    assert doc["reason"] == "SecretMissing" and doc["failures"] == 2
    assert doc["next_renewal"] == doc["next_attempt"] == "2025-02-01T00:10:00Z"
    assert doc["hosts"] == ["shop.example.com"] and doc["not_after"] is None
    assert doc["last_error"] == "challenge failed"
    # Nothing holds it: due now, no wait, no error (null, not "" or "-").
    fresh = _row(_deps()).machine()
    assert (fresh["state"], fresh["wait"], fresh["failures"], fresh["next_attempt"]) == (
        "due", None, 0, None)


def test_the_detail_view_says_wanted_held_failure_and_events() -> None:
    deps = _deps()
    failure = FailureState(1, NOW + timedelta(minutes=1), "challenge failed")
    deps.records.update(REF, secret_meta.failure_annotations(failure, NOW))
    seen: list[str] = []

    def events(obj: object) -> list[EventRow]:
        seen.append(str(obj))
        return [EventRow("Warning", "IssuanceFailed", "challenge failed", NOW)]

    runtime: Any = SimpleNamespace(deps=deps)
    with mock.patch.object(status, "_last_warning", lambda runtime, source: ""):
        found = detail.collect(runtime, REF, events)
        assert detail.collect(runtime, SecretRef("shop", "nobody-wants-this"), events) is None
    assert found is not None
    assert found["wanted"] == {
        "source": "Ingress/shop/web", "source_kind": "Ingress", "hosts": ["shop.example.com"],
        "issuer": "le", "challenge": "http-01", "dns_provider": None, "key_type": "ecdsa-p256",
        "profile": None, "renew_before_seconds": None}
    assert found["held"] == {"exists": False}
    assert found["last_failure"] == {"failures": 1, "at": "2025-02-01T00:00:00Z",
                                     "message": "challenge failed"}
    assert found["next_attempt"] == "2025-02-01T00:01:00Z" and found["state"] == "waiting"
    assert found["events"] == [{"type": "Warning", "reason": "IssuanceFailed",
                                "message": "challenge failed", "time": "2025-02-01T00:00:00Z"}]
    assert seen == ["Ingress/shop/web"]
    assert json.loads(output.render(found, "json")) == yaml.safe_load(
        output.render(found, "yaml"))
    text = detail.render_text(found)
    assert "wanted:\n  source: Ingress/shop/web" in text and "IssuanceFailed" in text


def test_plan_for_machines_names_the_action_and_its_reason_code() -> None:
    deps = _deps()
    doc = plan_view.machine(survey(deps))
    actions: Any = doc["actions"]
    (action,) = actions
    assert action == {"action": "issue", "secret": "shop/web-tls", "source": "Ingress/shop/web",
                      "hosts": ["shop.example.com"], "reason": "SecretMissing",
                      "why": "Secret shop/web-tls does not exist", "next_renewal": None,
                      "ari_note": None}
    assert doc["refused"] == [] and doc["missing_apis"] == []
    assert plan_view.lines(survey(deps))[0].startswith("issue    shop/web-tls <- Ingress/shop/web")


def test_a_host_not_allowed_row_names_the_config_key_that_fixes_it() -> None:
    web = ingress("web", "shop", tls=[tls_entry("web-tls", "shop.example.com")])
    deps = hostile.pass_deps(make_config(tenants={"hostPatterns": {}}), [web], [], NOW)
    deps.ledger = FakeLedger()
    with mock.patch.object(status, "_last_warning", lambda runtime, source: ""):
        rows = status.collect(SimpleNamespace(deps=deps), [])  # type: ignore[arg-type]
    (row,) = [r for r in rows if r.why == "HostNotAllowed"]
    assert "tenants.hostPatterns.shop" in row.last_error
    assert "tenants.allowAnyHost: true" in row.last_error
