"""At most one write every so often: the controller's batched stores (records, ledger) share it."""

from __future__ import annotations

import time


class WriteThrottle:
    """Not thread-safe: callers hold their own lock around `allows`."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last = float("-inf")  # the first write goes at once

    def allows(self, force: bool = False) -> bool:
        """Whether a write may go now (forced: always); a yes counts as the write."""
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return False
        self._last = now
        return True
