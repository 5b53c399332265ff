"""One exception family per boundary. Messages never carry key material."""

from __future__ import annotations

from dataclasses import dataclass, field


class CertbotK8sError(Exception):
    """Base of every error certbotk8s raises on purpose."""


class Outage(CertbotK8sError):
    """A service an order needs (the CA, a DNS server) does not answer at all: not the
    certificate's fault, so no counted backoff; one probe of the service decides when work
    resumes. Mixed into the boundary's own error class."""


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


class ChallengeFailed(AcmeError):
    """An authorization became invalid. Names the host and carries the CA's problem."""

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


class KubeUnreachable(KubeError):
    """The API server gave no answer (connection refused, reset, timed out). `cause` says which
    in plain words."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message
