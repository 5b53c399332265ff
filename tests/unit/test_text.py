"""Tenant text echoed safely: control characters escaped, long values clipped, status table."""

from __future__ import annotations

from certbotk8s.app.commands.status import StatusRow, render_table
from certbotk8s.core.sources.text import clip, printable, quote


def test_control_and_format_characters_are_escaped() -> None:
    assert printable("ok text") == "ok text"
    assert printable("\x1b[2Jgone") == "\\x1b[2Jgone"
    assert printable("a\nb\tc\x9bd") == "a\\x0ab\\x09c\\x9bd"
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert printable("back\\slash") == "back\\\\slash"
    assert printable("bücher.example") == "bücher.example"


def test_clip_and_quote_bound_long_values() -> None:
    assert clip("x" * 10, 20) == "x" * 10
    assert clip("x" * 200_000) == "x" * 80 + "... (200000 characters)"
    assert quote("\x1b" + "y" * 500) == "'\\x1b" + "y" * 79 + "... (501 characters)'"


def test_status_table_never_passes_escape_sequences_to_the_terminal() -> None:
    row = StatusRow(source="Ingress/t/\x1b]0;owned\x07", hosts="a.example.com",
                    secret="t/s", not_after="-", next_renewal="now",
                    why="x", last_error="failed: \x1b[31mred\x1b[0m\r\nfake row")
    table = render_table([row])
    assert "\x1b" not in table and "\r" not in table and "\x07" not in table
    assert table.count("\n") == 1  # the header and one row: no injected lines
    assert "\\x1b[31mred" in table
