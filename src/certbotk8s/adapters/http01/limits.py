"""Who keeps a slot in the HTTP-01 responder: the connection table and the capped request head.

A hostile pod can open as many sockets as it likes; the CA's validation (through the ingress or
gateway pods) must still be answered. So the responder keeps a table of its connections:

- at most `max_per_address` from one source address and `max_connections` in all;
- a connection still *reading* its request head must finish it within `head_deadline`; one that
  is *answering* (head read) within `request_deadline` of its accept;
- a connection over its address's share is closed at accept, before a thread or a byte is spent
  on it (cheap: the responder keeps accepting some 15,000 connections a second, so another
  client's connection never waits long behind a reconnecting attacker's in the listen backlog;
  evicting the address's own oldest instead cost a thread per reconnect and let 1,000
  reconnecting sockets cut a second client to one answer a second: bench/responder.py);
- when the whole table is full (many addresses), a newcomer is not refused while some connection
  is still reading: the oldest reading connection of the address holding the most connections
  makes room. Only when every connection is answering (none is idling) is the newcomer refused.

The request head (request line and headers) is read through `CappedHead`: at most `HEAD_LIMIT`
bytes per connection in all, in one buffer of that size, and no other read buffer.
"""

from __future__ import annotations

import http.client
import socket
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

HEAD_LIMIT = 8192  # bytes of request line and headers per connection, in all

C = TypeVar("C", bound=Hashable)


class HeadTooLarge(http.client.LineTooLong):
    """The request head passed HEAD_LIMIT bytes (http.server answers 431)."""

    def __init__(self, limit: int) -> None:
        http.client.HTTPException.__init__(self, f"request head over {limit} bytes")


@dataclass
class _Slot:
    address: str
    head_until: float  # reading past this: closed
    done_until: float  # still open past this (answering a client that does not read): closed
    reading: bool = True


@dataclass(frozen=True)
class Admission(Generic[C]):
    """The table's answer to a new connection: keep it or not, and whom to close for it."""

    admitted: bool
    evicted: tuple[C, ...] = ()


class ConnectionTable(Generic[C]):
    """The open connections in accept order, with the eviction rule above. Not thread-safe:
    the responder holds its lock around every call. `now` is a monotonic clock reading."""

    def __init__(self, max_connections: int, max_per_address: int, head_deadline: float,
                 request_deadline: float) -> None:
        self.max_connections, self.max_per_address = max_connections, max_per_address
        self.head_deadline, self.request_deadline = head_deadline, request_deadline
        self._slots: dict[C, _Slot] = {}  # insertion order: oldest first
        self._per_address: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._slots)

    def admit(self, conn: C, address: str, now: float) -> Admission[C]:
        victim: C | None = None
        if self._per_address[address] >= self.max_per_address:
            return Admission(False)
        if len(self._slots) >= self.max_connections:
            victim = self._oldest_reading_of_busiest()
            if victim is None:
                return Admission(False)
        evicted = (victim,) if victim is not None and self.release(victim) else ()
        self._slots[conn] = _Slot(address, now + self.head_deadline, now + self.request_deadline)
        self._per_address[address] += 1
        return Admission(True, evicted)

    def answering(self, conn: C) -> None:
        """The request head is read: the connection no longer counts as idle."""
        slot = self._slots.get(conn)
        if slot is not None:
            slot.reading = False

    def release(self, conn: C) -> bool:
        """Forget `conn` (closed, evicted or overdue); False if it was not in the table."""
        slot = self._slots.pop(conn, None)
        if slot is None:
            return False
        self._per_address[slot.address] -= 1
        if self._per_address[slot.address] <= 0:
            del self._per_address[slot.address]
        return True

    def overdue(self, now: float) -> list[C]:
        """Connections past their deadline, released from the table: the caller closes them."""
        late = [conn for conn, slot in self._slots.items()
                if slot.done_until <= now or (slot.reading and slot.head_until <= now)]
        for conn in late:
            self.release(conn)
        return late

    def _oldest_reading(self, address: str) -> C | None:
        return next((conn for conn, slot in self._slots.items()
                     if slot.reading and slot.address == address), None)

    def _oldest_reading_of_busiest(self) -> C | None:
        idle = {slot.address for slot in self._slots.values() if slot.reading}
        if not idle:
            return None
        busiest = max(idle, key=lambda address: self._per_address[address])
        return self._oldest_reading(busiest)


class CappedHead:
    """A read-only file over a socket for http.server: `readline` only, HEAD_LIMIT bytes in all.

    Holds at most `limit` bytes (what was received and not yet consumed); past the limit a
    `readline` raises HeadTooLarge. A timeout or a reset is raised as the socket raises it; the
    peer closing (or the responder shutting the socket down) ends the stream (b"").
    """

    def __init__(self, sock: socket.socket, limit: int = HEAD_LIMIT) -> None:
        self._sock, self._limit = sock, limit
        self._buffer = bytearray()
        self._received = 0
        self.closed = False

    def readline(self, size: int = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or (0 <= size <= len(self._buffer)):
                cut = end + 1 if end >= 0 else size
                if 0 <= size < cut:
                    cut = size
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return line
            if self._received >= self._limit:
                raise HeadTooLarge(self._limit)
            data = self._sock.recv(min(4096, self._limit - self._received))
            if not data:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self._received += len(data)
            self._buffer += data

    def close(self) -> None:
        self.closed = True
        self._buffer = bytearray()
