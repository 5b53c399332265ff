"""Durations written as in Go and Kubernetes, plus days: `720h`, `30m`, `10d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# Longer than any certificate lifetime; far below timedelta's limit (999999999 days), so tenant
# text like `99999999999d` is a ValueError, never an OverflowError.
MAX_DURATION = timedelta(days=3650)
# Shorter would round to nothing (`0.0000001s` is timedelta(0)) or below what any time kept in
# the records (whole seconds) can express.
MIN_DURATION = timedelta(seconds=1)
MAX_TEXT = 64  # characters; a duration is a few parts, anything longer is refused unread


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration: one or more `<number><unit>` parts, units d, h, m, s.

    Raises ValueError (message fit to follow "annotation X: ") when the text is not of that
    form, is zero, is shorter than MIN_DURATION (1 s) or longer than MAX_DURATION. Never raises
    anything else.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    if len(value) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"{text!r} is not a duration like '720h', '30m', '10d' or '1h30m'")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds < MIN_DURATION.total_seconds():
        raise ValueError(f"{text!r} must be at least 1 second")
    if not seconds <= MAX_DURATION.total_seconds():  # also catches inf from huge numbers
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest `parse_duration` text for a whole number of seconds (`30d`, `1h30m`)."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, total = divmod(total, int(size))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
