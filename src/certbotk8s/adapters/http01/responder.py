"""HTTP-01: a token store, the responder that serves it, and the solver with its self-check.

The responder answers only `GET|HEAD /.well-known/acme-challenge/<token>` (404 for anything
else) and reads no request body. A slow or hostile client cannot hold it (http01_limits): the
request head must arrive within a short deadline and 8 KiB, each source address has a share of
the connections, and a newcomer takes the slot of the oldest idle reader (of the address holding
the most) rather than being refused, so the CA's fetch gets in while one pod holds every socket it
can open. A token is served only when the request's Host header is the identifier it was issued
for.

The token store holds `<key authorization>\n<identifier>` (see `token_value`); a value without
an identifier (older writers) is served to any Host.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from certbotk8s.adapters.http01.limits import CappedHead, ConnectionTable, HeadTooLarge
from certbotk8s.core.errors import (
    CertbotK8sError,
    Http01SolverError,
    OrderAbandoned,
    retry_intent,
)
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge, TokenStore

log = logging.getLogger(__name__)

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_MAX_TOKEN = 256  # RFC 8555 tokens are 43 base64url characters; anything longer is noise


class MemoryTokenStore:
    """TokenStore in this process (one-shot runs, tests)."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._tokens[token] = key_authorization

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def delete(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)


Route = Callable[[str], tuple[int, str, bytes] | None]


def token_value(key_authorization: str, identifier: str) -> str:
    """What the solver stores for a token: the answer and the host it may be served for."""
    return f"{key_authorization}\n{identifier}"


def _served_for(value: str, host_header: str | None) -> str | None:
    """The key authorization in `value` if `host_header` names its identifier, else None."""
    answer, _, identifier = value.partition("\n")
    if not identifier:
        return answer
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return answer if host.rstrip(".") == identifier.lower() else None


def _make_handler(store: TokenStore, extra: Route | None, timeout: float) -> type[Any]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "certbotk8s"
        sys_version = ""

        def setup(self) -> None:
            # No buffered reader: the request head is read through one capped buffer.
            self.connection = self.request
            self.connection.settimeout(timeout)
            self.rfile = cast(Any, CappedHead(self.connection))  # http.server calls readline
            self.wfile = self.connection.makefile("wb", 0)

        def handle(self) -> None:
            try:
                super().handle()
            except HeadTooLarge:  # in the request line (in the headers http.server sends 431)
                self.command, self.request_version = "", self.protocol_version
                self.requestline = ""
                with contextlib.suppress(OSError):
                    self.send_error(431, "Request head too large")
            except (TimeoutError, OSError):  # a timeout in the headers, a reset: just close
                pass

        def _answer(self, head_only: bool) -> None:
            server: Any = self.server
            server.answering(self.connection)
            status, ctype, body = self._route(self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def _route(self, path: str) -> tuple[int, str, bytes]:
            path = path.split("?", 1)[0]
            if path.startswith(CHALLENGE_PREFIX):
                token = path[len(CHALLENGE_PREFIX):]
                if 0 < len(token) <= _MAX_TOKEN and "/" not in token:
                    value = store.get(token)
                    served = _served_for(value, self.headers.get("Host")) if value else None
                    if served is not None:
                        return 200, "text/plain", served.encode()
                return 404, "text/plain", b"not found\n"
            if extra is not None:
                answer = extra(path)
                if answer is not None:
                    return answer
            return 404, "text/plain", b"not found\n"

        def do_GET(self) -> None:
            self._answer(head_only=False)

        def do_HEAD(self) -> None:
            self._answer(head_only=True)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http01 %s - %s", self.address_string(), format % args)

    return Handler


@dataclass(frozen=True)
class ResponderLimits:
    """How the responder shares itself between clients (see adapters.http01.limits).

    `head_deadline`: from accept to the end of the request head; `request_deadline`: the whole
    connection; `read_timeout`: one read; `max_per_address` / `max_connections`: open at once.
    """

    max_connections: int = 256
    max_per_address: int = 32
    head_deadline: float = 1.5
    request_deadline: float = 10.0
    read_timeout: float = 5.0


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer over a ConnectionTable: per-address and total limits, evicting idle
    readers for newcomers, and a reaper that closes connections past their deadlines."""

    daemon_threads = True
    request_queue_size = 1024  # accept bursts fast; the limits are applied right after accept

    def __init__(self, address: tuple[str, int], handler: type[Any],
                 limits: ResponderLimits) -> None:
        # Set before binding: when the bind fails, socketserver calls server_close (below).
        self._closed = threading.Event()
        super().__init__(address, handler)
        self._table: ConnectionTable[socket.socket] = ConnectionTable(
            limits.max_connections, limits.max_per_address, limits.head_deadline,
            limits.request_deadline)
        self._lock = threading.Lock()
        self._tick = min(0.1, limits.head_deadline / 4)
        self.evicted = 0  # connections closed to make room for a newer one
        self.refused = 0  # connections closed at accept: every slot was answering
        self.overdue = 0  # connections closed at their deadline
        self._reaper = threading.Thread(target=self._reap, name="http01-reaper", daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admission = self._table.admit(request, str(client_address[0]), time.monotonic())
            self.evicted += len(admission.evicted)
            self.refused += 0 if admission.admitted else 1
        for victim in admission.evicted:
            _cut(victim)
        if not admission.admitted:
            self.shutdown_request(request)  # nothing read
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def answering(self, request: socket.socket) -> None:
        with self._lock:
            self._table.answering(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http01 %s: connection failed", client_address, exc_info=True)

    def _release(self, request: socket.socket) -> None:
        with self._lock:
            self._table.release(request)

    def _reap(self) -> None:
        # Unblocks a handler stuck in a read: shutting the socket down ends its recv at once.
        while not self._closed.wait(self._tick):
            with self._lock:
                late = self._table.overdue(time.monotonic())
                self.overdue += len(late)
            for conn in late:
                _cut(conn)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._table)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


def _cut(conn: socket.socket) -> None:
    """End a connection another thread is serving: its read returns EOF, its write fails."""
    with contextlib.suppress(OSError):  # already closed by its handler
        conn.shutdown(socket.SHUT_RDWR)


class Http01Responder:
    """A threaded HTTP server for tokens (and, for the controller, extra routes), shared fairly
    between client addresses (`ResponderLimits`)."""

    def __init__(
        self,
        store: TokenStore,
        host: str = "127.0.0.1",
        port: int = 8089,
        *,
        extra_routes: Route | None = None,
        limits: ResponderLimits | None = None,
    ) -> None:
        limits = limits or ResponderLimits()
        handler = _make_handler(store, extra_routes, limits.read_timeout)
        self._server = _BoundedServer((host, port), handler, limits)
        self._thread: threading.Thread | None = None

    @property
    def open_connections(self) -> int:
        """Connections being served now (for tests and metrics)."""
        return self._server.open_connections

    @property
    def closed_connections(self) -> dict[str, int]:
        """Connections the responder closed, by why: evicted, refused, overdue."""
        return {"evicted": self._server.evicted, "refused": self._server.refused,
                "overdue": self._server.overdue}

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Http01Responder:
        # `stop` waits for the loop to look at its flag: every 50 ms, not the default 0.5 s
        # (a `renew --once` with nothing to do would spend that long just stopping).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="http01-responder", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Http01Responder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class SelfCheck:
    """Fetch each token through the public path before the CA is asked to validate.

    `port` is where the CA will connect (80 in production; the lab's HTTP01_PORT).
    `resolver` is a `host:port` DNS server to resolve names through (the lab's BIND); None
    uses the system resolver.
    """

    enabled: bool = True
    port: int = 80
    resolver: str | None = None
    timeout: float = 10.0
    interval: float = 0.05
    networks: tuple[str, ...] = ()  # CIDRs it may connect to (a tenant picks the address); (): any


class Http01Solver:
    """ChallengeSolver for HTTP-01: writes tokens to a store the responder serves."""

    challenge_type = ChallengeType.HTTP01

    def __init__(self, store: TokenStore, self_check: SelfCheck | None = None,
                 keep_going: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.self_check = self_check or SelfCheck(enabled=False)
        self._keep_going = keep_going  # False: leadership lost, stop waiting (OrderAbandoned)

    def present(self, challenge: PendingChallenge) -> None:
        try:
            self.store.put(challenge.token,
                           token_value(challenge.key_authorization, challenge.domain))
        except (CertbotK8sError, ValueError) as e:
            raise Http01SolverError(
                f"cannot publish the HTTP-01 token for {challenge.domain}: {e}",
                intent=retry_intent(e)) from e

    def clean_up(self, challenge: PendingChallenge) -> None:
        try:
            self.store.delete(challenge.token)
        except (CertbotK8sError, ValueError) as e:
            raise Http01SolverError(
                f"cannot remove the HTTP-01 token for {challenge.domain}: {e}",
                intent=retry_intent(e)) from e

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        if not self.self_check.enabled:
            return
        deadline = time.monotonic() + self.self_check.timeout
        waiting = list(challenges)
        last_error: dict[str, str] = {}
        while waiting:
            still = []
            for ch in waiting:
                problem = self._fetch(ch)
                if problem is None:
                    continue
                last_error[ch.domain] = problem
                still.append(ch)
            waiting = still
            if not waiting:
                return
            if time.monotonic() >= deadline:
                details = "; ".join(f"{c.domain}: {last_error[c.domain]}" for c in waiting)
                raise Http01SolverError(f"HTTP-01 self-check failed: {details}")
            if self._keep_going is not None and not self._keep_going():
                raise OrderAbandoned("no longer the leader: self-check stopped")
            time.sleep(self.self_check.interval)

    def _address(self, host: str) -> str:
        address = self._resolve(host)
        networks = [ipaddress.ip_network(n) for n in self.self_check.networks]
        if networks and not any(ipaddress.ip_address(address) in n for n in networks):
            raise OSError(f"{host} resolves to {address}, outside solver.http01.selfCheckNetworks")
        return address

    def _resolve(self, host: str) -> str:
        if self.self_check.resolver is None:
            try:  # the first address, as a CA dials it
                return str(socket.getaddrinfo(host, self.self_check.port,
                                              type=socket.SOCK_STREAM)[0][4][0])
            except OSError as e:
                raise OSError(f"cannot resolve {host}: {e}") from e
        import dns.exception  # only with a configured resolver (dnspython costs ~0.2 s to import)
        import dns.resolver

        server, _, port = self.self_check.resolver.rpartition(":")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server]
        resolver.port = int(port)
        try:
            answer = resolver.resolve(host, "A", lifetime=2.0)
        except dns.exception.DNSException as e:
            raise OSError(f"cannot resolve {host}: {type(e).__name__}") from e
        return str(answer[0])

    def _fetch(self, ch: PendingChallenge) -> str | None:
        """None when the public path serves the right key authorization, else why not."""
        try:
            address = self._address(ch.domain)
            conn = http.client.HTTPConnection(address, self.self_check.port, timeout=2.0)
            try:
                conn.request("GET", CHALLENGE_PREFIX + ch.token, headers={"Host": ch.domain})
                response = conn.getresponse()
                body = response.read(1024).decode(errors="replace").strip()
            finally:
                conn.close()
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"
        if response.status != 200:
            return f"HTTP {response.status}"
        if body != ch.key_authorization:
            return "served a different key authorization"
        return None


def lookup_outage(host: str, resolver: str | None, timeout: float = 2.0) -> str | None:
    """Why `host` cannot be looked up right now (no answer, timeout, SERVFAIL: the DNS the
    self-check and the CA use is down), or None: it resolves, or DNS answered that it does not
    exist (an answer, not an outage). `resolver` as `SelfCheck.resolver` (None: the system's)."""
    if resolver is None:
        try:
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            if e.errno in (socket.EAI_AGAIN, socket.EAI_FAIL):
                return f"cannot resolve {host}: {e.strerror}"
        return None
    import dns.exception  # as in Http01Solver._resolve: only when a resolver is configured
    import dns.resolver

    server, _, port = resolver.rpartition(":")
    lookup = dns.resolver.Resolver(configure=False)
    lookup.nameservers = [server]
    lookup.port = int(port)
    try:
        lookup.resolve(host, "A", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except dns.exception.DNSException as e:
        return f"cannot resolve {host} at {resolver}: {type(e).__name__}"
    return None
