"""Tenant text made safe to repeat: bounded in length, control characters escaped.

Annotation values, host names and object names come from untrusted tenants. They reach logs,
Event messages and the operator's terminal (`status`), so whatever is echoed goes through here.
"""

from __future__ import annotations

import unicodedata

ECHO_LIMIT = 80  # characters of a tenant value quoted back in a message


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
        elif char == " " or unicodedata.category(char)[0] not in "CZ":
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """At most `limit` characters of `text` (then an ellipsis and the full length)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def quote(text: str, limit: int = ECHO_LIMIT) -> str:
    """A tenant value as it may appear in a log line or Event: clipped, escaped, quoted."""
    return f"'{printable(clip(text, limit))}'"
