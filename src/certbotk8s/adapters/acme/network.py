"""`acme.client.ClientNetwork` with the retries the library does not do, and request accounting.

The library signs every request (we never hand-roll JWS) but retries `badNonce` only once,
ignores `Retry-After` on `rateLimited`/503, and does not retry connection errors. This
subclass adds, for POSTs:
- `badNonce`: retried at once (the error response carries a fresh nonce, which we keep), up to
  `max_bad_nonce` times;
- `rateLimited` and 503: wait `Retry-After` and retry when it is at most `max_retry_after`;
  a longer wait is not spent in a worker thread: `AcmeRateLimited` / `AcmeCaUnavailable`
  carry it to the caller (the CA-health gate holds every order until the CA is back);
- other 5xx and timeouts: exponential backoff with full jitter, then `AcmeCaUnavailable`;
- connection errors: one quick retry (a blip), then `AcmeCaUnavailable` at once: a CA that
  refuses connections is down, and one directory probe (app/health/service_probe.py) finds out
  when it is back instead of every worker retrying on its own.
Every HTTP exchange is reported to an optional observer (metrics, the benchmark's counter).
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import josepy as jose
import requests
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages

from certbotk8s.core.errors import AcmeCaUnavailable, AcmeRateLimited

_PROXIES = {("no_proxy" if k == "no" else k): v
            for k, v in urllib.request.getproxies().items() if k in ("http", "https", "no")}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    url: str
    status: int  # 0 when no response arrived
    seconds: float


RequestObserver = Callable[[RequestRecord], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_bad_nonce: int = 20
    max_transient: int = 5
    max_connect_errors: int = 1
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    max_retry_after: float = 10.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryingNetwork(acme_client.ClientNetwork):
    """A ClientNetwork for one thread at a time (the engine keeps one per thread)."""

    def __init__(
        self,
        *args: Any,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # requests reads the proxy environment on every request (~1.5 ms of CPU each): read
        # it once here instead. HTTPS_PROXY/NO_PROXY still apply; REQUESTS_CA_BUNDLE does not
        # (the issuer's caBundle does).
        self.session.trust_env = False
        self.session.proxies = _PROXIES
        self.retry = retry or RetryPolicy()
        self.observer = observer
        self._sleep = sleep
        self._local = threading.local()

    # -- accounting and nonce harvesting ---------------------------------------------------

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        status = 0
        try:
            response: requests.Response = super()._send_request(method, url, *args, **kwargs)
            status = response.status_code
        finally:
            if self.observer is not None:
                self.observer(RequestRecord(method, url, status, time.monotonic() - started))
        self._local.last_response = response
        # Error responses carry a fresh nonce too; the library drops it and would HEAD newNonce.
        if not response.ok and self.REPLAY_NONCE_HEADER in response.headers:
            # A malformed nonce on an error response is simply not kept.
            with contextlib.suppress(acme_errors.Error):
                self._add_nonce(response)
        return response

    def last_status(self) -> int:
        """HTTP status of this thread's last response (0 when none arrived)."""
        return self._last_status_and_retry_after()[0]

    def _last_status_and_retry_after(self) -> tuple[int, float | None]:
        response: requests.Response | None = getattr(self._local, "last_response", None)
        if response is None:
            return 0, None
        return response.status_code, parse_retry_after(response.headers.get("Retry-After"))

    def _last_problem(self) -> messages.Error | None:
        """The problem document of the last response, if it carried one."""
        response: requests.Response | None = getattr(self._local, "last_response", None)
        if response is None:
            return None
        try:
            problem: messages.Error = messages.Error.from_json(response.json())
        except (ValueError, jose.DeserializationError):
            return None
        return problem

    def _backoff(self, attempt: int) -> float:
        cap = min(self.retry.backoff_cap, self.retry.backoff_base * (2**attempt))
        return random.uniform(0, cap)

    @contextlib.contextmanager
    def server_errors_answer(self) -> Iterator[None]:
        """Within this block a 5xx with a problem document is the CA's answer, not an outage.

        For requests a CA may fail on deterministically: a newOrder whose `replaces` names a
        certificate the CA cannot match (Pebble answers 500). Retrying it is pointless and
        counting it as the CA being down would stop every other order.
        """
        self._local.server_errors_answer = True
        try:
            yield
        finally:
            self._local.server_errors_answer = False

    # -- POST with retries -----------------------------------------------------------------

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        bad_nonces = 0
        transient = 0
        while True:
            try:
                response: requests.Response = self._post_once(*args, **kwargs)
                return response
            except messages.Error as error:
                status, retry_after = self._last_status_and_retry_after()
                if error.code == "badNonce":
                    bad_nonces += 1
                    if bad_nonces > self.retry.max_bad_nonce:
                        raise
                    continue
                if error.code == "rateLimited":
                    if retry_after is None or retry_after > self.retry.max_retry_after:
                        raise AcmeRateLimited(
                            f"rate limited by the CA: {error.detail or error.code}", retry_after
                        ) from error
                    self._sleep(retry_after)
                    continue
                if status == 503 and retry_after is not None and (
                        retry_after > self.retry.max_retry_after):
                    raise AcmeCaUnavailable(
                        f"CA unavailable (HTTP 503, retry after {retry_after:.0f}s): "
                        f"{error.detail or error.code}", retry_after) from error
                if status >= 500 or error.code == "serverInternal":
                    if getattr(self._local, "server_errors_answer", False):
                        raise
                    transient += 1
                    if transient > self.retry.max_transient:
                        raise AcmeCaUnavailable(
                            f"CA kept failing (HTTP {status}): {error.detail or error.code}"
                        ) from error
                    self._sleep(self._wait_for_5xx(status, retry_after, transient))
                    continue
                raise
            except acme_errors.ClientError as error:
                # 409 (the library's ConflictError) or a non-JSON error body.
                status, retry_after = self._last_status_and_retry_after()
                if status < 500:
                    problem = self._last_problem()
                    if problem is not None:
                        raise problem from error
                    raise
                if status == 503 and retry_after is not None and (
                        retry_after > self.retry.max_retry_after):
                    raise AcmeCaUnavailable(f"CA unavailable (HTTP 503, retry after "
                                            f"{retry_after:.0f}s)", retry_after) from error
                transient += 1
                if transient > self.retry.max_transient:
                    raise AcmeCaUnavailable(f"CA answered HTTP {status} without a problem "
                                            "document") from error
                self._sleep(self._wait_for_5xx(status, retry_after, transient))
            except (requests.ConnectionError, requests.Timeout) as error:
                transient += 1
                if transient > self._connect_budget(error):
                    raise AcmeCaUnavailable(f"cannot reach the CA: {_reason(error)}") from error
                self._sleep(self._backoff(transient))

    def _connect_budget(self, error: Exception) -> int:
        if isinstance(error, requests.ConnectionError) and not isinstance(error, requests.Timeout):
            return min(self.retry.max_connect_errors, self.retry.max_transient)
        return self.retry.max_transient

    def _wait_for_5xx(self, status: int, retry_after: float | None, attempt: int) -> float:
        if status == 503 and retry_after is not None:
            return min(retry_after, self.retry.max_retry_after)
        return self._backoff(attempt)

    def get(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        transient = 0
        while True:
            try:
                response: requests.Response = super().get(url, *args, **kwargs)
                return response
            except (requests.ConnectionError, requests.Timeout) as error:
                transient += 1
                if transient > self._connect_budget(error):
                    raise AcmeCaUnavailable(f"cannot reach the CA: {_reason(error)}") from error
                self._sleep(self._backoff(transient))


def _reason(error: Exception) -> str:
    """`connection refused` / `timed out` rather than a wall of urllib3 text."""
    text = str(error).lower()
    for short in ("connection refused", "timed out", "name or service not known",
                  "connection reset", "remote end closed"):
        if short in text:
            return short
    return type(error).__name__


def probe_directory(url: str, verify: bool | str, timeout: float = 5.0) -> str | None:
    """One plain GET of an ACME directory: None when it answers 200 with JSON, else why not."""
    try:
        response = requests.get(url, verify=verify, timeout=timeout, proxies=_PROXIES)
    except requests.RequestException as e:
        return f"cannot reach the CA: {_reason(e)}"
    if response.status_code != 200:
        return f"directory answered HTTP {response.status_code}"
    try:
        response.json()
    except ValueError:
        return "directory answered something that is not JSON"
    return None
