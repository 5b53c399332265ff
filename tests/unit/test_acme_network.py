"""Retry-After parsing used by the ACME network layer (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from certbotk8s.adapters.acme.network import parse_retry_after


def test_delta_seconds() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0


def test_http_date_relative_to_now() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 27 Nov 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Fri, 27 Nov 2026 11:00:00 GMT", now) == 0.0


def test_missing_or_garbage_is_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
