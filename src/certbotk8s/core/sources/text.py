"""Tenant text made safe to repeat: bounded in length, control characters escaped.

Annotation values, host names and object names come from untrusted tenants. They reach logs,
Event messages and the operator's terminal (`status`), so whatever is echoed goes through here.
"""

from __future__ import annotations

import unicodedata

ECHO_LIMIT = 80  # characters of a tenant value quoted back in a message
MESSAGE_LIMIT = 1024  # bytes (UTF-8): the API server's limit for an Event message; logs too


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every control, format or separator character (other than space) escaped.

    Covers C0/C1 controls (terminal escape sequences start with ESC or CSI), bidi overrides and
    zero-width characters (Cf), line and paragraph separators; a backslash is doubled, so the
    output is unambiguous.
    """
    out: list[str] = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif not _is_control(char):
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def _is_control(char: str) -> bool:
    return char != " " and unicodedata.category(char)[0] in "CZ"


def escape_controls(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message made one safe line: control, format and separator characters escaped
    (a backslash is kept as it is: this is the last line of defence behind `quote`, not a
    quoting of its own), at most `limit` UTF-8 bytes (then an ellipsis and the full length)."""
    head = text[:limit]  # escaping only grows text: no need to look further
    escaped = "".join(_escape(c) if _is_control(c) else c for c in head)
    if len(text) <= limit and len(escaped.encode()) <= limit:
        return escaped
    marker = f"... ({len(text)} characters)"
    kept = escaped.encode()[: max(0, limit - len(marker))].decode(errors="ignore")
    return kept + marker


def few(names: list[str], limit: int = 5) -> str:
    """The first `limit` of `names`, then how many more: a list cut to fit in one message."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """At most `limit` characters of `text` (then an ellipsis and the full length)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def quote(text: str, limit: int = ECHO_LIMIT) -> str:
    """A tenant value as it may appear in a log line or Event: clipped, escaped, quoted."""
    return f"'{printable(clip(text, limit))}'"
