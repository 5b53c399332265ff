"""Renewals in compressed time (tests/lab/compressed.py): a short run of the real controller
with 4-minute certificates, a moved ARI window, an injected failure and a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from .compressed import Plan, run
from .conftest import Lab

pytestmark = pytest.mark.lab


def test_short_compressed_run_keeps_every_promise(
    lab: Lab, admin_api: ApiClient, controller_api: ApiClient, tmp_path: Path
) -> None:
    # Restarted 30 s in (the moved window opens later, so the new controller must read it);
    # ended once the moved window's renewal came and no injected failure is under way.
    plan = Plan(sources=6, namespaces=2, duration=150.0, restart_at=0.2, inject_after=30.0,
                end_when_shown=True)
    result = run(lab.env, admin_api, plan, tmp_path, 19800 + os.getpid() % 100)
    figures, problems = result.verdict()
    assert not problems, (figures, problems)
    assert figures["sources"] == 6 and figures["expired"] == 0
    assert figures["renewals"] >= 1, figures  # the moved window alone renews one in 40-70 s
    assert result.moved is not None, "no certificate was found to move its ARI window"
    assert result.restart is not None and figures["leaders"] >= 2, figures
