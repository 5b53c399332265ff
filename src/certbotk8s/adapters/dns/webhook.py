"""DNS-01 provider: an HTTP endpoint of the user's that writes TXT records.

`POST <url>` with JSON `{"action": "present"|"cleanup", "fqdn", "zone", "value"}` and, when
configured, `Authorization: Bearer <token>`. Any 2xx is success; cleanup of a value that is
gone must be 2xx too. Connection errors, timeouts, 408, 429 and 5xx are retried `retries`
times with a doubling pause (0.2 s, capped at 2 s); other answers fail at once. Redirects are
not followed (the token would go along). An endpoint that gave no HTTP answer on any attempt
(refused, timed out) is `DnsServerUnreachable`, an outage `probe` (a bare GET, no token) watches
end. The token never appears in a message.
"""

from __future__ import annotations

import time

import requests

from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError
from certbotk8s.core.ports import TxtRecord

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class WebhookProvider:
    """DnsRecordProvider over an HTTP webhook."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0,
                 retries: int = 3) -> None:
        self.url = url
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc credentials from the environment

    def describe(self) -> str:
        return f"webhook {self.url}"

    def probe(self) -> str | None:
        """None once the endpoint gives any HTTP answer (a bare GET, no token), else why not."""
        try:
            self._session.get(self.url, timeout=min(self.timeout, 5.0), allow_redirects=False)
        except requests.Timeout:
            return f"webhook {self.url}: no answer (timeout)"
        except requests.RequestException as e:
            return f"webhook {self.url}: {type(e).__name__}"
        return None

    def present(self, record: TxtRecord) -> None:
        self._call("present", record)

    def cleanup(self, record: TxtRecord) -> None:
        self._call("cleanup", record)

    def _call(self, action: str, record: TxtRecord) -> None:
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = {"action": action, "fqdn": record.fqdn, "zone": record.zone,
                "value": record.value}
        delay = 0.2
        problem = ""
        answered = False  # any HTTP answer: not an outage, whatever it said
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            try:
                response = self._session.post(self.url, json=body, headers=headers,
                                              timeout=self.timeout, allow_redirects=False)
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g}s (timeout)"
                continue
            except requests.RequestException as e:
                problem = f"{type(e).__name__}"
                continue
            if 200 <= response.status_code < 300:
                return
            answered = True
            problem = f"HTTP {response.status_code} {response.text[:200]!r}"
            if response.status_code not in _RETRY_STATUS:
                break
        message = (f"webhook {self.url}: {action} of TXT {record.fqdn} in zone {record.zone} "
                   f"failed after {attempt + 1} attempt(s): {problem}")
        if not answered:  # refused or timed out every time: the endpoint is down
            raise DnsServerUnreachable(message, self.url)
        raise DnsSolverError(message)
