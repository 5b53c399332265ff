"""Log setup: library retry chatter is quiet, the controller's own warnings are not."""

from __future__ import annotations

import logging

import pytest

from certbotk8s.app.logs import configure_logging


def test_urllib3_retries_are_not_logged_but_our_warnings_are(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (Retry(total=2)) after connection broken by NewConnectionError")
    logging.getLogger("certbotk8s.adapters.kube.lease").warning("get leases failed: refused")
    err = capsys.readouterr().err
    assert "Retrying" not in err
    assert "get leases failed: refused" in err
