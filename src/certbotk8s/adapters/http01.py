"""HTTP-01: a token store, the responder that serves it, and the solver with its self-check.

The responder answers only `GET|HEAD /.well-known/acme-challenge/<token>` (404 for anything
else) and reads no request body. A slow or hostile client cannot hold it: every connection has a
whole-request deadline (a reaper closes it when it passes, however slowly bytes trickle in), at
most `max_connections` are served at once (more are closed at accept), and a token is served
only when the request's Host header is the identifier it was issued for.

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
from typing import Any

import dns.exception
import dns.resolver

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
            super().setup()
            self.connection.settimeout(timeout)

        def _answer(self, head_only: bool) -> None:
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


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap and a whole-request deadline per connection."""

    daemon_threads = True
    request_queue_size = 128  # accept bursts fast; the cap is applied right after accept

    def __init__(self, address: tuple[str, int], handler: type[Any], max_connections: int,
                 deadline: float) -> None:
        super().__init__(address, handler)
        self._deadline = deadline
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: dict[socket.socket, float] = {}  # connection -> when it must be done
        self._open_lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="http01-reaper", daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed at once, nothing read
            return
        with self._open_lock:
            self._open[request] = time.monotonic() + self._deadline
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

    def _release(self, request: socket.socket) -> None:
        with self._open_lock:
            if self._open.pop(request, None) is None:
                return
        self._slots.release()

    def _reap(self) -> None:
        # Unblocks a handler stuck in a read: shutting the socket down ends its recv at once.
        while not self._closed.wait(min(0.25, self._deadline / 4)):
            now = time.monotonic()
            with self._open_lock:
                late = [conn for conn, until in self._open.items() if until <= now]
            for conn in late:
                with contextlib.suppress(OSError):  # already closed by its handler
                    conn.shutdown(socket.SHUT_RDWR)

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


class Http01Responder:
    """A threaded HTTP server for tokens (and, for the controller, extra routes).

    `connection_timeout` bounds each read; `request_deadline` the whole connection;
    `max_connections` how many are served at once.
    """

    def __init__(
        self,
        store: TokenStore,
        host: str = "127.0.0.1",
        port: int = 8089,
        *,
        extra_routes: Route | None = None,
        connection_timeout: float = 5.0,
        request_deadline: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        handler = _make_handler(store, extra_routes, connection_timeout)
        self._server = _BoundedServer((host, port), handler, max_connections, request_deadline)
        self._thread: threading.Thread | None = None

    @property
    def open_connections(self) -> int:
        """Connections being served now (for tests and metrics)."""
        return self._server.open_connections

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Http01Responder:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http01-responder", daemon=True
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
