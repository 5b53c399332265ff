"""One exception family per boundary. Messages never carry key material."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar


class RetryIntent(enum.Enum):
    """What a failure means for the next attempt (core.renewal.after_order decides from it)."""

    FAILED = "failed"  # the certificate's failure: counted backoff
    ORDER_DEAD = "order-dead"  # the CA failed or refused the order: counted, never resumed
    SERVICE_DOWN = "service-down"  # a service gives no answer (`Outage`): its probe decides
    API_AWAY = "api-away"  # the API server gave no answer or a 5xx: tried again soon
    ABANDONED = "abandoned"  # this replica stopped leading: the next leader carries on


class CertbotK8sError(Exception):
    """Base of every error certbotk8s raises on purpose.

    Each class declares its `retry` intent; an adapter that wraps another error in its own
    family passes the cause's intent on (`intent=retry_intent(e)`) so it is not lost."""

    retry: ClassVar[RetryIntent] = RetryIntent.FAILED

    def __init__(self, *args: object, intent: RetryIntent | None = None) -> None:
        super().__init__(*args)
        self._intent = intent

    @property
    def intent(self) -> RetryIntent:
        return getattr(self, "_intent", None) or self.retry


def retry_intent(error: BaseException) -> RetryIntent:
    """The retry intent of `error`: declared by its class or when it was wrapped. A wrapper
    that declared nothing still counts as the API server being away when its cause was (the
    one place that looks at a cause: errors wrapped before intents were passed on)."""
    if not isinstance(error, CertbotK8sError):
        return RetryIntent.FAILED
    if getattr(error, "_intent", None) is not None or error.retry is not RetryIntent.FAILED:
        return error.intent
    cause = error.__cause__
    if cause is not None and retry_intent(cause) is RetryIntent.API_AWAY:
        return RetryIntent.API_AWAY
    return RetryIntent.FAILED


def failed_identifier(error: BaseException | None) -> str | None:
    """The identifier whose authorization the CA failed (it counts in the budget), if any."""
    return error.host if isinstance(error, ChallengeFailed) else None


class Outage(CertbotK8sError):
    """A service an order needs (the CA, a DNS server) does not answer at all: not the
    certificate's fault, so no counted backoff; one probe of the service decides when work
    resumes. Mixed into the boundary's own error class."""

    retry = RetryIntent.SERVICE_DOWN


# --- ACME ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """An RFC 7807 problem document as the CA sent it (RFC 8555 section 6.7)."""

    type: str
    detail: str = ""
    identifier: str | None = None
    subproblems: tuple[Problem, ...] = field(default=())

    def __str__(self) -> str:
        short = self.type.rsplit(":", 1)[-1]
        text = f"{short}: {self.detail}" if self.detail else short
        if self.identifier:
            text = f"{self.identifier}: {text}"
        if self.subproblems:
            text += " [" + "; ".join(str(p) for p in self.subproblems) + "]"
        return text


class AcmeError(CertbotK8sError):
    """Anything that went wrong talking to the ACME CA."""


class AcmeTransientError(AcmeError):
    """Network trouble or 5xx that outlived the retry budget; worth trying again later."""


class AcmeRateLimited(AcmeError):
    """The CA said `rateLimited`; `retry_after_seconds` is its advice (None if it gave none)."""

    def __init__(self, message: str, retry_after_seconds: float | None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class AcmeCaUnavailable(AcmeTransientError, Outage):
    """The CA cannot be reached or says it is down (5xx, 503 with a distant Retry-After).

    `retry_after_seconds` is the CA's advice when it gave one."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class AcmeProblemError(AcmeError):
    """The CA refused a request with a problem document (`status`: the HTTP status, if known)."""

    retry = RetryIntent.ORDER_DEAD

    def __init__(self, message: str, problem: Problem, status: int | None = None) -> None:
        super().__init__(f"{message}: {problem}")
        self.problem = problem
        self.status = status


class AcmeAccountGone(AcmeProblemError):
    """The CA does not know the account (`accountDoesNotExist`) or refuses it (`unauthorized`
    naming the account: deactivated, key blocked)."""

    @property
    def key_refused(self) -> bool:
        """The CA refuses the key itself (deactivated account, blocked key): a new key is due."""
        return not self.problem.type.endswith(":accountDoesNotExist")


class AcmeAccountRecoveryFailed(AcmeError):
    """The account was gone and registering it again failed."""


class AcmeOrderGone(AcmeError):
    """404 on an order URL: the CA lost the order (e.g. restarted)."""


class OrderAbandoned(AcmeError):
    """This replica stopped leading mid-order; the order is left to the next leader."""

    retry = RetryIntent.ABANDONED


class ChallengeFailed(AcmeError):
    """An authorization became invalid. Names the host and carries the CA's problem."""

    retry = RetryIntent.ORDER_DEAD

    def __init__(self, host: str, challenge_type: str, problem: Problem) -> None:
        super().__init__(f"{challenge_type} challenge for {host} failed: {problem}")
        self.host = host
        self.challenge_type = challenge_type
        self.problem = problem


class OrderTimeout(AcmeError):
    """The order did not reach the wanted state within its deadline."""


class AriMalformed(AcmeError):
    """The CA's renewal info (ARI) could not be read as a window; callers fall back."""


# --- challenge solvers --------------------------------------------------------------------


class SolverError(CertbotK8sError):
    """A challenge could not be presented, checked or cleaned up."""


class DnsSolverError(SolverError):
    """RFC 2136 update refused, zone not found, or the record did not propagate in time."""


class DnsServerUnreachable(DnsSolverError, Outage):
    """A DNS server the provider needs gave no answer at all (connection refused or reset,
    timeout). A server that answers with an error (REFUSED, NOTAUTH, a TSIG error) is a
    configuration error instead: a plain `DnsSolverError`. `server` names it."""

    def __init__(self, message: str, server: str) -> None:
        super().__init__(message)
        self.server = server


class Http01SolverError(SolverError):
    """The HTTP-01 token could not be served or the self-check failed."""


# --- Kubernetes ---------------------------------------------------------------------------


class KubeError(CertbotK8sError):
    """The Kubernetes API refused or failed a request (not-found is `None`, not this)."""


class KubeConflict(KubeError):
    """A write lost a resourceVersion race or hit an existing object."""


class KubeForbidden(KubeError):
    """RBAC said no: the manifests do not grant this."""


class KubeServerError(KubeError):
    """The API server answered 5xx: it, or its storage (etcd), failed the request."""

    retry = RetryIntent.API_AWAY


class KubeUnreachable(KubeError):
    """The API server gave no answer (connection refused, reset, timed out). `cause` says which
    in plain words."""

    retry = RetryIntent.API_AWAY

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message
