"""Tenant text in Events, logs and status is quoted and bounded (finding 5), with the Event
recorder and the plain log formatter escaping control characters as a last line of defence."""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

import pytest

from certbotk8s.adapters.kube.events import KubeEventRecorder, event_message
from certbotk8s.app.logs import configure_logging
from certbotk8s.core.model import ObjectRef
from certbotk8s.core.sources.discovery import discover
from certbotk8s.core.sources.text import MESSAGE_LIMIT, escape_controls

from .factories import make_config

FORGED = "x\n2025-01-01 00:00:00 INFO certbotk8s: issued evil\x1b[2J\u202e"


def _plain(text: str) -> bool:
    """No control, format or separator character but space: one line, nothing for a terminal."""
    return all(c == " " or unicodedata.category(c)[0] not in "CZ" for c in text)


def _gateway(listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "team-b",
                         "annotations": {"certbotk8s.io/enabled": "true"}},
            "spec": {"listeners": listeners}}


def _listener(name: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "protocol": "HTTPS", "hostname": "www.example.com",
            "tls": {"certificateRefs": [ref]}}


def test_gateway_api_certificate_ref_names_are_quoted_in_every_message() -> None:
    gateway = _gateway([
        _listener(FORGED, {"name": FORGED, "kind": "ConfigMap"}),
        _listener("cross", {"name": FORGED, "namespace": "team-a"}),
        _listener("same", {"name": FORGED}),
        _listener("long", {"name": "n" * 100_000, "namespace": "team-a"}),
    ])
    found = discover([], [], [gateway], [], make_config())
    reasons = sorted(p.reason for p in found.problems)
    assert reasons == ["InvalidSecretName", "RefNotPermitted", "RefNotPermitted",
                       "UnsupportedCertificateRef"]
    for problem in found.problems:
        assert _plain(problem.message), problem.message
        assert len(problem.message.encode()) <= MESSAGE_LIMIT
        assert "\\x0a2025-01-01" in problem.message or "nnnn" in problem.message


def test_escape_controls_keeps_text_on_one_line_and_caps_it() -> None:
    assert escape_controls("a\nb\x1b[31m\u202ec") == "a\\x0ab\\x1b[31m\\u202ec"
    assert escape_controls("plain: text, 'quoted' and \\ kept") == (
        "plain: text, 'quoted' and \\ kept")
    capped = escape_controls("é" * 5000)
    assert len(capped.encode()) <= MESSAGE_LIMIT and capped.endswith("(5000 characters)")


def test_event_recorder_escapes_and_caps_whatever_it_is_given() -> None:
    assert event_message(FORGED) == escape_controls(FORGED)
    posted: list[dict[str, Any]] = []

    class _Response:
        data = json.dumps({"metadata": {"name": "e"}})

    class _Rest:
        def post(self, path: str, body: dict[str, Any], *_: Any) -> _Response:
            posted.append(body)
            return _Response()

    recorder = KubeEventRecorder.__new__(KubeEventRecorder)
    KubeEventRecorder.__init__(recorder, None, instance="test")  # type: ignore[arg-type]
    recorder._rest = _Rest()  # type: ignore[assignment]
    recorder.record(ObjectRef("v1", "Ingress", "team-b", "web"), "Warning", "Test",
                    FORGED + "y" * 5000)
    message = posted[0]["message"]
    assert _plain(message) and len(message.encode()) <= MESSAGE_LIMIT


def test_plain_log_lines_cannot_be_forged_or_grown(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("certbotk8s.test").warning("refused %s", FORGED + "z" * 5000)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and _plain(err.rstrip("\n"))
    assert len(err.encode()) < MESSAGE_LIMIT + 200
    # a traceback still reads as one: only the message is escaped
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("certbotk8s.test").exception("failed")
    assert "Traceback (most recent call last):\n" in capsys.readouterr().err


def test_a_secret_claimed_by_many_sources_names_a_few_and_counts_the_rest() -> None:
    """Finding 8: one refusal message was 190 KB (every claimant named); now a few names and
    a count, well under 1 KiB, on each of the claimants."""
    from .factories import ingress, tls_entry

    sources = [ingress(f"ing-{i:03}", "team-b", tls=[tls_entry("shared", f"h{i}.example.com")])
               for i in range(300)]
    found = discover(sources, [], [], [], make_config())
    conflicts = [p for p in found.problems if p.reason == "SecretConflict"]
    assert len(conflicts) == 300
    for problem in conflicts:
        assert len(problem.message.encode()) < 512, problem.message
        assert "Ingress/team-b/ing-000" in problem.message and "295 more" in problem.message
        assert "..." not in problem.message  # cut by listing, not by the last-resort cap
