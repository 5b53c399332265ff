"""DNS-01 provider: a command (like certbot's manual hooks), for the CronJob image.

Runs `command` with only these variables in its environment (plus PATH):
`CERTBOTK8S_ACTION` (present|cleanup), `CERTBOTK8S_FQDN`, `CERTBOTK8S_ZONE`, `CERTBOTK8S_VALUE`,
and certbot's `CERTBOT_DOMAIN` (the name without `_acme-challenge.`) and `CERTBOT_VALIDATION`.
Exit 0 is success; cleanup of a value that is gone must exit 0 too. The command is killed after
`timeout`; a failure names the command, the exit code and the end of its stderr.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.ports import TxtRecord

_PREFIX = "_acme-challenge."


class ExecProvider:
    """DnsRecordProvider that runs a command per change."""

    def __init__(self, command: Sequence[str], timeout: float = 60.0) -> None:
        self.command = tuple(command)
        self.timeout = timeout

    def describe(self) -> str:
        return f"exec {self.command[0]}"

    def probe(self) -> str | None:
        """No outage probe: this provider's errors are never taken for a server outage (they
        count as failed attempts), so there is nothing to watch come back."""
        return None

    def present(self, record: TxtRecord) -> None:
        self._run("present", record)

    def cleanup(self, record: TxtRecord) -> None:
        self._run("cleanup", record)

    def _run(self, action: str, record: TxtRecord) -> None:
        domain = record.fqdn[len(_PREFIX):] if record.fqdn.startswith(_PREFIX) else record.fqdn
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CERTBOTK8S_ACTION": action,
            "CERTBOTK8S_FQDN": record.fqdn,
            "CERTBOTK8S_ZONE": record.zone,
            "CERTBOTK8S_VALUE": record.value,
            "CERTBOT_DOMAIN": domain,
            "CERTBOT_VALIDATION": record.value,
        }
        where = f"exec {self.command[0]}: {action} of TXT {record.fqdn}"
        try:
            done = subprocess.run(self.command, env=env, capture_output=True, text=True,
                                  timeout=self.timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise DnsSolverError(f"{where}: killed after {self.timeout:g}s (timeout)") from e
        except OSError as e:
            raise DnsSolverError(f"{where}: cannot run: {type(e).__name__}: {e}") from e
        if done.returncode != 0:
            tail = done.stderr.strip()[-300:]
            raise DnsSolverError(f"{where}: exit {done.returncode}: {tail}")
