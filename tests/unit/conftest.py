"""Fixtures shared by the unit tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import settings

# No per-example deadline: the suite shares 2 cores with other work, and a deadline is a timing
# assertion (speed is measured by bench/, never asserted by a test).
settings.register_profile("certbotk8s", deadline=None)
settings.load_profile("certbotk8s")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
