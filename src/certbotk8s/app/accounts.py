"""Reports account re-registration: an Event on the account Secret, metrics, and a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable

from certbotk8s.adapters.acme.engine import AccountChange
from certbotk8s.adapters.kube.secrets import account_secret_name
from certbotk8s.core.errors import AcmeAccountRecoveryFailed
from certbotk8s.core.model import ObjectRef
from certbotk8s.core.ports import EventRecorder

log = logging.getLogger(__name__)

# outcome is "registered" (same key), "new-key" (the CA refused the old key) or "failed"
AccountMetric = Callable[[str, str], None]


class AccountEvents:
    """AccountReporter for the IssuerRegistry (see app/issuers.py)."""

    def __init__(self, events: EventRecorder, namespace: str,
                 metric: AccountMetric | None = None) -> None:
        self._events = events
        self._namespace = namespace
        self._metric = metric

    def _secret(self, issuer: str) -> ObjectRef:
        return ObjectRef("v1", "Secret", self._namespace, account_secret_name(issuer))

    def recovered(self, issuer: str, change: AccountChange) -> None:
        outcome = "new-key" if change.new_key_pem is not None else "registered"
        if change.new_key_pem is not None:
            message = (f"issuer {issuer}: the CA refused the account key ({change.reason}); "
                       f"a new key was made and registered as {change.uri}")
            reason = "AccountKeyReplaced"
        else:
            message = (f"issuer {issuer}: the CA no longer knew account {change.previous_uri} "
                       f"({change.reason}); registered again with the stored key as "
                       f"{change.uri}")
            reason = "AccountRegisteredAgain"
        self._events.record(self._secret(issuer), "Warning", reason, message)
        if self._metric is not None:
            self._metric(issuer, outcome)

    def recovery_failed(self, issuer: str, error: AcmeAccountRecoveryFailed) -> None:
        self._events.record(self._secret(issuer), "Warning", "AccountRecoveryFailed",
                            f"issuer {issuer}: {error}")
        if self._metric is not None:
            self._metric(issuer, "failed")
