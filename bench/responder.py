"""Benchmark: the HTTP-01 responder while one address holds as many idle sockets as it can.

Starts the responder (default limits) in a child process on 127.0.0.1, port picked free, with
one token. For each level (100, 1,000, 10,000 idle sockets; clamped to the fd limit, which the
output says), an attacker from 127.0.0.1 opens that many connections that each send half a
request line and then nothing, and reopens every one the responder closes; meanwhile a client
bound to 127.0.0.2 fetches the token over and over for `--seconds`. Reports that client's token
answers per second, its latency, its failures, the attacker's reconnects and the responder's RSS
(now and peak). Loopback only; bounded in sockets and time. Prints one JSON document.
Usage: .venv/bin/python bench/responder.py [--levels 100,1000,10000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
HOST = "victim.example.com"
SPARE_FDS = 256  # for the victim client, the interpreter and the child's pipes

CHILD = f"""
import sys
sys.path.insert(0, {str(ROOT / "src")!r})
from certbotk8s.adapters.http01.responder import Http01Responder, MemoryTokenStore, token_value
store = MemoryTokenStore()
store.put({TOKEN!r}, token_value({TOKEN!r} + ".thumb", {HOST!r}))
with Http01Responder(store, "127.0.0.1", 0) as responder:
    print(responder.port, flush=True)
    sys.stdin.read()  # until the parent closes it
"""


def _rss_mib(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_rss_mib": fields.get("VmHWM", 0.0)}


class Attacker:
    """Holds `count` half-sent requests from 127.0.0.1 and reopens each one that is closed."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.reconnects = 0
        self.connect_failures = 0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
            sock.sendall(b"GET /.well-known/acme-")
        except OSError:
            self.connect_failures += 1
            return
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ)

    def start(self) -> Attacker:
        for _ in range(self.count):
            self._open()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                self._selector.unregister(sock)
                sock.close()
                if not self._stop.is_set():
                    self.reconnects += 1
                    self._open()

    @property
    def held(self) -> int:
        return len(self._selector.get_map())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


def _victim(port: int, seconds: float) -> dict[str, object]:
    """Fetch the token from 127.0.0.2 for `seconds`, one connection per fetch."""
    answered, failed, latencies = 0, 0, []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                          source_address=("127.0.0.2", 0))
        try:
            conn.request("GET", f"/.well-known/acme-challenge/{TOKEN}", headers={"Host": HOST})
            response = conn.getresponse()
            ok = response.status == 200 and response.read() == f"{TOKEN}.thumb".encode()
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        if ok:
            answered += 1
            latencies.append(time.monotonic() - started)
        else:
            failed += 1
    latencies.sort()
    return {
        "answers_per_second": round(answered / seconds, 1), "answered": answered,
        "failed": failed,
        "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "latency_ms_max": round(latencies[-1] * 1000, 2) if latencies else None,
    }


def _fd_budget() -> tuple[int, str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft - SPARE_FDS, f"RLIMIT_NOFILE soft {soft}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--levels", default="100,1000,10000")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    budget, limit_note = _fd_budget()
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        result: dict[str, object] = {"fd_limit": limit_note, "seconds_per_level": args.seconds,
                                     "baseline": {**_victim(port, args.seconds),
                                                  **_rss_mib(child.pid)}}
        levels = []
        for wanted in (int(n) for n in args.levels.split(",")):
            count = min(wanted, budget)
            attacker = Attacker(port, count).start()
            try:
                row: dict[str, object] = {"idle_sockets": wanted, "opened": count,
                                          "clamped": count < wanted}
                row.update(_victim(port, args.seconds))
                row.update({"attacker_reconnects": attacker.reconnects,
                            "attacker_connect_failures": attacker.connect_failures,
                            "attacker_held_at_end": attacker.held})
                row.update(_rss_mib(child.pid))
            finally:
                attacker.stop()
            levels.append(row)
        result["levels"] = levels
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
