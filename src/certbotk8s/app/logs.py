"""Logging setup: plain or JSON lines. Key material never reaches a log record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from certbotk8s.core.sources.text import escape_controls

# Belt and braces: nothing should log a PEM private key, but if a library ever does, the
# record is rewritten before any handler sees it.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


class RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "PRIVATE KEY" in message:
            record.msg = _PRIVATE_KEY.sub("[redacted private key]", message)
            record.args = None
        return True


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger: message`, the message one line of at most 1 KiB with control
    characters escaped (a newline or terminal escape in tenant text cannot forge a line); a
    traceback follows as it is."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactKeys())
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The acme library logs JWS payloads (including CSRs) at DEBUG; keep it quieter.
    logging.getLogger("acme").setLevel(max(logging.INFO, root.level))
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # Its "Retrying (...) after connection broken" lines repeat, with the request URL, what
    # certbotk8s then reports once in plain words (API server unreachable: connection refused).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
