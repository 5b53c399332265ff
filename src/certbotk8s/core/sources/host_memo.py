"""What discovery made of each source's host list, kept from one pass to the next (pure data).

Normalising a host (IDNA, label rules) is the costly part of a discovery pass, and every pass
reads every source again. A cache per host name (`names.normalize_host`'s LRU) thrashes as soon
as the sources list more distinct names than it holds: 90 hostile Ingresses of 1,000 names
each cost 1.5 s of CPU per pass, in every pass. This memo is keyed by one source entry's whole
list of raw names instead, and keeps exactly the entries the last pass used: an unchanged
source costs one lookup, whatever its size, and an entry whose source went away or changed is
dropped after one pass (the memo never holds more than two passes' sources, which the
informers hold anyway).

Not thread-safe: the caller serialises the passes that share one memo.
"""

from __future__ import annotations

from dataclasses import dataclass

RawHosts = tuple[str, ...]


@dataclass(frozen=True)
class NormalisedHosts:
    """The valid hosts of one raw list and the problems (reason, message) of the others."""

    hosts: frozenset[str]
    problems: tuple[tuple[str, str], ...]


MemoKey = tuple[RawHosts, tuple[str, ...]]  # the raw list, the allowed special-use suffixes


class HostMemo:
    """Two generations: what this pass used, and what the pass before used."""

    def __init__(self) -> None:
        self._current: dict[MemoKey, NormalisedHosts] = {}
        self._previous: dict[MemoKey, NormalisedHosts] = {}

    def get(self, key: MemoKey) -> NormalisedHosts | None:
        found = self._current.get(key)
        if found is None:
            found = self._previous.pop(key, None)
            if found is not None:
                self._current[key] = found
        return found

    def put(self, key: MemoKey, value: NormalisedHosts) -> None:
        self._current[key] = value

    def end_pass(self) -> None:
        """What this pass did not use is dropped at the end of the next one."""
        self._previous, self._current = self._current, {}

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
