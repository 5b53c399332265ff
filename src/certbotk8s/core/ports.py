"""The boundaries the core talks through, as small Protocols. Adapters implement them.

Conventions for every boundary here:
- not-found is `None`, never an exception;
- each boundary raises exceptions of its own family only (see `errors.py`), chaining the cause;
- methods are safe to call again after a failure (idempotent where stated);
- cancellation: callers stop between calls; a method never leaves half-made state that its
  `clean_up`/`remove` counterpart cannot undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from certbotk8s.core.model import ChallengeType, HttpRouting, ObjectRef


@dataclass(frozen=True)
class PendingChallenge:
    """One challenge the CA wants answered for one identifier.

    `domain` is the identifier without any `*.` (the CA's authorization names the base domain
    and flags wildcards). `key_authorization` is what HTTP-01 serves; `dns_value` is the TXT
    value for DNS-01 (base64url SHA-256 of the key authorization). Both are public values.
    """

    type: ChallengeType
    domain: str
    wildcard: bool
    token: str
    key_authorization: str = field(repr=False)
    dns_value: str = ""


class ChallengeSolver(Protocol):
    """Makes challenges answerable, then removes every trace of them.

    - `present` publishes one challenge (HTTP token, TXT record, routing). Idempotent.
      Raises `SolverError` when it cannot.
    - `wait_until_ready` returns once the CA can see every presented challenge (HTTP self-check,
      DNS propagation to all authoritative servers) or raises `SolverError` after its bound.
    - `clean_up` removes exactly what `present` added for this challenge and nothing else;
      it never raises for something already gone (not-found is success) and is always called
      in `finally`, also after a failed or cancelled order.
    """

    challenge_type: ChallengeType

    def present(self, challenge: PendingChallenge) -> None: ...

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None: ...

    def clean_up(self, challenge: PendingChallenge) -> None: ...


class TokenStore(Protocol):
    """HTTP-01 tokens by token name. `get` of an unknown token is `None`.

    In-process for one-shot runs; the controller shares it between replicas through the API.
    Writes are last-writer-wins per token (tokens are unique per challenge).
    """

    def put(self, token: str, key_authorization: str) -> None: ...

    def get(self, token: str) -> str | None: ...

    def delete(self, token: str) -> None: ...


# --- Kubernetes ---------------------------------------------------------------------------

KubeObject = dict[str, object]  # an object as the API returns it in JSON form (camelCase keys)


@dataclass(frozen=True)
class SourceSnapshot:
    """Every source object the controller may read, listed once.

    `missing_apis` names resource types the cluster does not serve (e.g. no Istio CRDs); their
    lists are empty. Other failures raise `KubeError`.
    """

    ingresses: tuple[KubeObject, ...] = ()
    istio_gateways: tuple[KubeObject, ...] = ()
    gateway_api_gateways: tuple[KubeObject, ...] = ()
    reference_grants: tuple[KubeObject, ...] = ()
    missing_apis: tuple[str, ...] = ()


class SourceReader(Protocol):
    """Lists source objects across all namespaces (or only `namespaces` when given).

    ReferenceGrants are always listed in every namespace: they live beside the Secret they
    grant, not beside the Gateway that is in scope.
    """

    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot: ...


@dataclass(frozen=True)
class StoredSecret:
    """A Secret as read. `data` is decoded; it may hold key material, so it is never printed."""

    namespace: str
    name: str
    resource_version: str
    type: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    data: dict[str, bytes] = field(default_factory=dict, repr=False, hash=False, compare=False)


class SecretStore(Protocol):
    """Reads and writes TLS Secrets.

    - `read` of a missing Secret is `None`.
    - `write_tls` creates the Secret when `resource_version` is None (`KubeConflict` if it
      appeared meanwhile), otherwise replaces it only at that resourceVersion (`KubeConflict`
      when someone else wrote first): never a blind overwrite. It writes `tls.crt` and
      `tls.key` in one request, so a reader never sees half of a certificate. Returns the new
      resourceVersion.
    - `set_annotations` patches annotations only (value None removes one); not-found is a no-op.
    """

    def read(self, namespace: str, name: str) -> StoredSecret | None: ...

    def write_tls(
        self,
        namespace: str,
        name: str,
        key_pem: bytes,
        fullchain_pem: bytes,
        labels: dict[str, str],
        annotations: dict[str, str],
        resource_version: str | None,
    ) -> str: ...

    def set_annotations(self, namespace: str, name: str,
                        annotations: dict[str, str | None]) -> None: ...


class EventRecorder(Protocol):
    """Posts a Kubernetes Event on a source object. Never raises: a failed Event is logged."""

    def record(self, obj: ObjectRef, type: str, reason: str, message: str) -> None: ...


class AccountStore(Protocol):
    """The ACME account key (PEM) and URI per issuer, kept in the controller's namespace.

    `load` of an issuer with no account yet is `None`. `save` creates or updates.
    """

    def load(self, issuer: str) -> tuple[bytes, str | None] | None: ...

    def save(self, issuer: str, key_pem: bytes, account_uri: str | None) -> None: ...


class RoutingPublisher(Protocol):
    """Creates the objects that route `/.well-known/acme-challenge/` for `hosts` to the solver.

    `publish` creates them in the controller's namespace (idempotent per `order_id`) and
    returns what it created; `remove` deletes those (not-found is success). Always paired in
    try/finally by the caller.
    """

    def publish(self, routing: HttpRouting, hosts: Sequence[str], order_id: str
                ) -> list[ObjectRef]: ...

    def remove(self, objects: Sequence[ObjectRef]) -> None: ...


# --- leader election ----------------------------------------------------------------------


class LeaderElection(Protocol):
    """Decides which replica may order certificates; every replica still serves HTTP-01 tokens.

    - `start` begins campaigning in the background and returns at once; a no-op while running.
      A missing Lease is created (not-found is not an error). API errors are logged and retried
      every retry period; they never stop the campaign and never raise here.
    - `is_leader` is True only while this replica holds the lease AND renewed it within the
      renew deadline (shorter than the lease others wait for), so a leader cut off from the API
      turns False before anyone else may take over. It never blocks on the network; callers
      check it before each order and stop between calls (cancellation) once it is False.
    - `stop` ends the campaign; `is_leader` is False from the moment it is called. With
      `release`, a lease we still hold is handed back (holder cleared) so a successor takes over
      at its next poll; without, successors wait for it to expire. A release that fails or
      loses a resourceVersion race (conflict: someone else wrote) is logged, not raised.
    """

    def start(self) -> None: ...

    def is_leader(self) -> bool: ...

    def stop(self, release: bool = True) -> None: ...


# --- DNS-01 providers ---------------------------------------------------------------------


@dataclass(frozen=True)
class TxtRecord:
    """One TXT value at one name. `fqdn` and `zone` are absolute, lower-case, without the
    trailing dot; `fqdn` is the name really written (after CNAME following). `value` is public."""

    fqdn: str
    zone: str
    value: str


class DnsRecordProvider(Protocol):
    """Writes TXT values through one DNS provider (RFC 2136, a cloud API, a webhook, a command).

    - `present` adds `record.value` at `record.fqdn` in `record.zone`, keeping every other
      value at that name. Idempotent (adding a value that is there is success).
    - `cleanup` removes exactly `record.value` and nothing else; a value or name already gone
      is success (not-found is not an error).
    - Both raise `DnsSolverError` naming the provider's server/endpoint and the error, chained
      to the cause, never carrying a credential. They may be retried (each call is complete
      or changes nothing); a caller that stops between calls leaves at most the values it
      presented, which `cleanup` removes.
    - `describe` is a short credential-free name for messages (`rfc2136 127.0.0.1:53`).
    - A server that gives no answer at all (refused connection, timeout) is
      `DnsServerUnreachable`, an outage: `probe` (cheap, no change) returns None once the
      server answers again, else why not. A provider without a probe returns None and never
      raises `DnsServerUnreachable`.
    """

    def describe(self) -> str: ...

    def probe(self) -> str | None: ...

    def present(self, record: TxtRecord) -> None: ...

    def cleanup(self, record: TxtRecord) -> None: ...
