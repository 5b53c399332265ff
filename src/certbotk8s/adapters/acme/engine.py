"""The ACME engine: accounts, orders, challenges, finalization, chains, ARI.

Built from `acme`'s declared wire objects (`messages`) and its signing network layer; only the
order flow is ours, because the library's `poll_and_finalize` sleeps a full second before each
poll and polls every authorization separately. Here an order costs, for one host with a fresh
authorization: newOrder, authz, challenge, order poll(s), finalize, order poll(s), certificate.

Boundary contract (see core/ports.py for the conventions):
- not-found: an unknown account with `only_return_existing` -> `None` from `find_account`.
- errors: `AcmeError` family only; the CA's problem document is kept (type, detail, subproblems).
- retries: transport retries live in `RetryingNetwork`. An order is re-placed here only after
  a fault the CA caused, once each: the account was gone (`accountDoesNotExist`, or an
  `unauthorized` naming the account: registered again with the stored key, or with a new key
  when the CA refuses that key; `on_account_change` persists it) or the CA lost the order (404).
- cancellation: `keep_going()` is asked before every request of an order up to finalize (after
  it, the certificate exists and only this process has its key: it is fetched); when it says
  no the order is abandoned (`OrderAbandoned`) and left as it is for a successor to resume: its
  challenges are then not cleaned up (the successor answers the same ones). Otherwise challenge
  clean-up always runs (`finally`) whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import josepy as jose
import requests
from acme import challenges, messages
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certbotk8s.adapters.acme.network import (
    RequestObserver,
    RetryingNetwork,
    RetryPolicy,
    parse_retry_after,
)
from certbotk8s.core.errors import (
    AcmeAccountGone,
    AcmeAccountRecoveryFailed,
    AcmeCaUnavailable,
    AcmeError,
    AcmeOrderGone,
    AcmeProblemError,
    AcmeTransientError,
    AriMalformed,
    ChallengeFailed,
    OrderAbandoned,
    OrderTimeout,
    Problem,
)
from certbotk8s.core.model import ChallengeType, IssuedCertificate, KeyType, RenewalWindow
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import ChallengeSolver, PendingChallenge
from certbotk8s.core.renewal.ari_timing import AriReading

USER_AGENT = "certbotk8s/0.1 (+acme-python)"
log = logging.getLogger(__name__)


class NewOrderWithReplaces(messages.NewOrder):
    """newOrder with RFC 9773 `replaces` (the ARI CertID of the certificate being renewed)."""

    replaces: str | None = jose.field("replaces", omitempty=True)


@dataclass(frozen=True)
class ExternalAccountBinding:
    key_id: str
    hmac_key_b64url: str = field(repr=False)
    algorithm: str = "HS256"


@dataclass(frozen=True)
class OrderRequest:
    hosts: tuple[str, ...]  # normalised A-labels, wildcards as "*.example.com"
    challenge: ChallengeType = ChallengeType.HTTP01
    key_type: KeyType = KeyType.ECDSA_P256
    profile: str | None = None
    replaces: str | None = None  # ARI CertID of the certificate this one renews
    preferred_chain: str | None = None  # issuer CN of the chain's top certificate
    # Seconds from the first challenge to the certificate (core.renewal.waits.order_waits);
    # None: the engine's PollSchedule.deadline.
    deadline: float | None = None


@dataclass(frozen=True)
class PollSchedule:
    """Fast first polls (a CA on loopback answers in milliseconds), then back off."""

    first: float = 0.02
    factor: float = 2.0
    cap: float = 2.0
    deadline: float = 120.0


@dataclass(frozen=True)
class AccountChange:
    """The account was registered again (`new_key_pem` set when the CA refused the old key)."""

    uri: str
    previous_uri: str | None
    reason: str  # the CA's problem that made it necessary
    new_key_pem: bytes | None = field(default=None, repr=False)


AccountListener = Callable[[AccountChange], None]
KeepGoing = Callable[[], bool]


def _account_problem(problem: Problem) -> bool:
    """accountDoesNotExist, or an unauthorized/badPublicKey that is about the account itself."""
    if problem.type.endswith(":accountDoesNotExist"):
        return True
    return (problem.type.endswith((":unauthorized", ":badPublicKey"))
            and "account" in problem.detail.lower())


def account_key_to_jwk(private_key: keys.PrivateKey) -> jose.JWK:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return jose.JWKEC(key=private_key)
    return jose.JWKRSA(key=private_key)


def _alg_for(jwk: jose.JWK) -> jose.JWASignature:
    if isinstance(jwk, jose.JWKEC):
        size = jwk.key.curve.key_size
        return {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}[size]
    return jose.RS256


def problem_from(error: messages.Error) -> Problem:
    subs = tuple(
        Problem(
            type=s.typ or "",
            detail=s.detail or "",
            identifier=s.identifier.value if s.identifier is not None else None,
        )
        for s in (error.subproblems or ())
    )
    return Problem(type=error.typ or "", detail=error.detail or "", subproblems=subs)


class AcmeEngine:
    """One ACME account at one CA. Thread-safe: each thread gets its own signing network."""

    def __init__(
        self,
        directory_url: str,
        account_key: keys.PrivateKey,
        *,
        account_uri: str | None = None,
        email: str | None = None,
        eab: ExternalAccountBinding | None = None,
        ca_bundle: str | None = None,
        retry: RetryPolicy | None = None,
        poll: PollSchedule | None = None,
        observer: RequestObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_account_change: AccountListener | None = None,
        on_account_failure: Callable[[AcmeAccountRecoveryFailed], None] | None = None,
    ) -> None:
        self.directory_url = directory_url
        self._jwk = account_key_to_jwk(account_key)
        self._alg = _alg_for(self._jwk)
        self.account_uri = account_uri
        self.email = email
        self._eab = eab
        self._verify: bool | str = ca_bundle or True
        self._retry = retry or RetryPolicy()
        self._poll = poll or PollSchedule()
        self._observer = observer
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._directory: messages.Directory | None = None
        self._on_account_change = on_account_change
        self._on_account_failure = on_account_failure
        self._account_lock = threading.Lock()
        self._generation = 0  # bumped when the key changes: per-thread networks are rebuilt
        self._cancel = threading.local()  # keep_going of the order running on this thread

    # -- plumbing ----------------------------------------------------------------------------

    def _net(self) -> RetryingNetwork:
        net: RetryingNetwork | None = getattr(self._local, "net", None)
        if net is None or getattr(self._local, "generation", -1) != self._generation:
            net = RetryingNetwork(
                key=self._jwk,
                alg=self._alg,
                verify_ssl=self._verify,
                user_agent=USER_AGENT,
                retry=self._retry,
                observer=self._observer,
                sleep=self._sleep,
            )
            self._local.net = net
            self._local.generation = self._generation
        if self.account_uri is not None and (net.account is None
                                             or net.account.uri != self.account_uri):
            net.account = messages.RegistrationResource(
                uri=self.account_uri, body=messages.Registration()
            )
        return net

    @property
    def directory(self) -> messages.Directory:
        with self._lock:
            if self._directory is None:
                try:
                    response = self._net().get(self.directory_url)
                    self._directory = messages.Directory.from_json(response.json())
                except AcmeTransientError:
                    raise
                except (acme_errors.Error, messages.Error, requests.RequestException,
                        ValueError) as e:
                    status = self._net().last_status()
                    if status >= 500:
                        raise AcmeCaUnavailable(f"ACME directory {self.directory_url} answered "
                                                f"HTTP {status}") from e
                    raise AcmeError(f"cannot read ACME directory {self.directory_url}") from e
            return self._directory

    def _post(self, url: str, obj: jose.JSONDeSerializable | None) -> requests.Response:
        keep_going: KeepGoing | None = getattr(self._cancel, "keep_going", None)
        if keep_going is not None and not keep_going():
            raise OrderAbandoned("no longer the leader: order left to the next leader")
        net = self._net()
        try:
            response: requests.Response = net.post(
                url, obj, new_nonce_url=self.directory["newNonce"]
            )
            return response
        except messages.Error as e:
            problem = problem_from(e)
            if _account_problem(problem):
                raise AcmeAccountGone(f"CA refused the account at POST {url}", problem,
                                      net.last_status()) from e
            raise AcmeProblemError(f"CA refused POST {url}", problem, net.last_status()) from e
        except acme_errors.Error as e:
            raise AcmeError(f"ACME request to {url} failed: {type(e).__name__}") from e

    def _get_order(self, order_url: str) -> requests.Response:
        """POST-as-GET an order; a 404 means the CA lost it (`AcmeOrderGone`)."""
        try:
            return self._get_as_post(order_url)
        except (AcmeAccountGone, OrderAbandoned, AcmeTransientError):
            raise
        except AcmeError as e:  # Pebble answers a bare 404, Boulder a problem document
            if self._net().last_status() == 404:
                raise AcmeOrderGone(f"the CA no longer knows order {order_url}") from e
            raise

    def _get_as_post(self, url: str) -> requests.Response:
        return self._post(url, None)

    # -- account -----------------------------------------------------------------------------

    def _registration(self, only_return_existing: bool) -> messages.NewRegistration:
        eab_json: dict[str, Any] | None = None
        if self._eab is not None and not only_return_existing:
            eab_json = messages.ExternalAccountBinding.from_data(
                account_public_key=self._jwk.public_key(),
                kid=self._eab.key_id,
                hmac_key=self._eab.hmac_key_b64url,
                directory=self.directory,
                hmac_alg=self._eab.algorithm,
            )
        if only_return_existing:
            return messages.NewRegistration(only_return_existing=True)
        return messages.NewRegistration.from_data(
            email=self.email,
            terms_of_service_agreed=True,
            external_account_binding=eab_json,
        )

    def find_account(self) -> str | None:
        """The URI of the account for our key (onlyReturnExisting), or None if there is none."""
        net = self._net()
        net.account = None
        try:
            response = self._post(self.directory["newAccount"], self._registration(True))
        except AcmeProblemError as e:
            if e.problem.type.endswith(":accountDoesNotExist"):
                return None
            raise
        self.account_uri = response.headers.get("Location")
        net.account = messages.RegistrationResource(
            uri=self.account_uri, body=messages.Registration()
        )
        return self.account_uri

    def _register(self) -> str:
        """newAccount for the current key (ToS agreed, contact and EAB as configured)."""
        self.account_uri = None  # sign with the JWK, not a kid
        net = self._net()
        net.account = None
        response = self._post(self.directory["newAccount"], self._registration(False))
        uri = response.headers.get("Location")
        if not uri:
            raise AcmeError("CA created an account but sent no Location")
        self.account_uri = uri
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        return uri

    def recover_account(self, failed_uri: str | None, cause: AcmeAccountGone) -> None:
        """Register again after the CA forgot or refused the account used at `failed_uri`.

        Once per loss: threads that failed with the same URI wait here and reuse the result.
        The stored key is tried first; a key the CA refuses is replaced by a new one.
        `on_account_change` is told (to persist the URI and key) before this returns.
        """
        with self._account_lock:
            if self.account_uri != failed_uri:
                return  # another thread registered again already
            previous, new_key_pem = self.account_uri, None
            try:
                try:
                    if cause.key_refused:
                        raise cause
                    self._register()
                except AcmeAccountGone as refused:
                    log.warning("ACME CA %s refuses the account key (%s); registering a new "
                                "key", self.directory_url, refused.problem)
                    key = keys.generate_key(KeyType.ECDSA_P256)
                    with self._lock:
                        self._jwk = account_key_to_jwk(key)
                        self._alg = _alg_for(self._jwk)
                        self._generation += 1
                    new_key_pem = keys.key_to_pem(key)
                    self._register()
            except AcmeError as e:
                self.account_uri = previous
                failed = AcmeAccountRecoveryFailed(
                    f"the CA no longer accepts account {previous} ({cause.problem}) and "
                    f"registering again failed: {e}")
                if self._on_account_failure is not None:
                    self._on_account_failure(failed)
                raise failed from e
            assert self.account_uri is not None
            log.warning("ACME account %s gone at %s (%s); registered again as %s",
                        previous, self.directory_url, cause.problem, self.account_uri)
            if self._on_account_change is not None:
                self._on_account_change(AccountChange(self.account_uri, previous,
                                                      str(cause.problem), new_key_pem))

    def ensure_account(self) -> str:
        """Reuse, recover (lost URI) or create the account for our key; returns its URI."""
        if self.account_uri is not None:
            self._net()
            return self.account_uri
        existing = self.find_account()
        if existing is not None:
            return existing
        return self._register()

    # -- revocation --------------------------------------------------------------------------

    def revoke(self, certificate_pem: bytes, reason: int,
               certificate_key: keys.PrivateKey | None = None) -> None:
        """Revoke the leaf of `certificate_pem` (RFC 8555 section 7.6) with an RFC 5280 reason.

        Signed by this account (which must have ordered it), or by the certificate's own key
        when `certificate_key` is given: Let's Encrypt accepts `keyCompromise` (1) only that
        way, and then blocks the key. Raises AcmeProblemError when the CA refuses
        (`alreadyRevoked`, `unauthorized`, `badRevocationReason`).
        """
        leaf = x509.load_pem_x509_certificates(certificate_pem)[0]
        body = messages.Revocation(certificate=leaf, reason=reason)
        url = self.directory["revokeCert"]
        if certificate_key is None:
            self.ensure_account()
            self._post(url, body)
            return
        jwk = account_key_to_jwk(certificate_key)
        net = RetryingNetwork(key=jwk, alg=_alg_for(jwk), verify_ssl=self._verify,
                              user_agent=USER_AGENT, retry=self._retry,
                              observer=self._observer, sleep=self._sleep)
        try:  # no account: the JWS embeds the certificate's public key
            net.post(url, body, new_nonce_url=self.directory["newNonce"])
        except messages.Error as e:
            raise AcmeProblemError(f"CA refused POST {url}", problem_from(e)) from e
        except acme_errors.Error as e:
            raise AcmeError(f"ACME request to {url} failed: {type(e).__name__}") from e

    # -- orders ------------------------------------------------------------------------------

    def issue(
        self,
        request: OrderRequest,
        solvers: Mapping[ChallengeType, ChallengeSolver],
        on_order: Callable[[str], None] | None = None,
        keep_going: KeepGoing | None = None,
    ) -> IssuedCertificate:
        """Place an order, solve what is pending, finalize with a fresh key, fetch the chain.

        `on_order(order_url)` runs right after the CA created the order, so the caller can
        persist it and a successor can `resume` it instead of placing another. A lost account
        is registered again and a lost order placed again, once each (module docstring).
        """
        recovered = replaced = False
        with self._cancellable(keep_going):
            while True:
                self.ensure_account()
                used = self.account_uri
                try:
                    return self._issue_once(request, solvers, on_order)
                except AcmeAccountGone as e:
                    if recovered:
                        raise
                    recovered = True
                    self.recover_account(used, e)
                except AcmeOrderGone as e:
                    if replaced:
                        raise
                    replaced = True
                    log.warning("%s; placing a new order for %s", e, ", ".join(request.hosts))

    @contextlib.contextmanager
    def _cancellable(self, keep_going: KeepGoing | None) -> Iterator[None]:
        previous = getattr(self._cancel, "keep_going", None)
        self._cancel.keep_going = keep_going
        try:
            yield
        finally:
            self._cancel.keep_going = previous

    def _issue_once(
        self,
        request: OrderRequest,
        solvers: Mapping[ChallengeType, ChallengeSolver],
        on_order: Callable[[str], None] | None,
    ) -> IssuedCertificate:
        key = keys.generate_key(request.key_type)
        csr_pem = keys.make_csr(key, request.hosts)
        order_url, order = self._new_order(request)
        if on_order is not None:
            on_order(order_url)
        return self._complete(order_url, order, request, solvers, key, csr_pem)

    def resume(
        self,
        order_url: str,
        request: OrderRequest,
        solvers: Mapping[ChallengeType, ChallengeSolver],
        keep_going: KeepGoing | None = None,
    ) -> IssuedCertificate:
        """Continue an order placed earlier (e.g. by a leader that died) instead of a new one.

        `AcmeOrderGone` when the CA no longer knows it (the caller places a new one)."""
        with self._cancellable(keep_going):
            return self._resume(order_url, request, solvers)

    def _resume(
        self,
        order_url: str,
        request: OrderRequest,
        solvers: Mapping[ChallengeType, ChallengeSolver],
    ) -> IssuedCertificate:
        self.ensure_account()
        order = messages.Order.from_json(self._get_order(order_url).json())
        if order.status == messages.STATUS_INVALID:
            raise AcmeProblemError("order to resume is invalid", self._order_problem(order))
        if order.status not in (messages.STATUS_PENDING, messages.STATUS_READY):
            # Finalized by the process that died: its key is gone with it.
            raise AcmeError(f"order {order_url} is already {order.status}; cannot resume")
        key = keys.generate_key(request.key_type)
        csr_pem = keys.make_csr(key, request.hosts)
        return self._complete(order_url, order, request, solvers, key, csr_pem)

    def _new_order(self, request: OrderRequest) -> tuple[str, messages.Order]:
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=h)
                       for h in request.hosts]
        body = NewOrderWithReplaces(
            identifiers=identifiers, profile=request.profile, replaces=request.replaces
        )
        if request.replaces:
            with self._net().server_errors_answer():
                response = self._post(self.directory["newOrder"], body)
        else:
            response = self._post(self.directory["newOrder"], body)
        order_url = response.headers.get("Location")
        if not order_url:
            raise AcmeError("CA created an order but sent no Location")
        return order_url, messages.Order.from_json(response.json())

    def _complete(
        self,
        order_url: str,
        order: messages.Order,
        request: OrderRequest,
        solvers: Mapping[ChallengeType, ChallengeSolver],
        key: keys.PrivateKey,
        csr_pem: bytes,
    ) -> IssuedCertificate:
        deadline = time.monotonic() + (request.deadline or self._poll.deadline)
        if order.status == messages.STATUS_PENDING:
            pending = self._pending_challenges(order, request.challenge)
            solver = solvers.get(request.challenge)
            if pending and solver is None:
                raise AcmeError(f"no solver configured for {request.challenge.value}")
            self._solve(order_url, pending, solver, deadline)
            order = self._poll_order(order_url, {messages.STATUS_PENDING}, deadline)
        if order.status == messages.STATUS_READY:
            csr = x509.load_pem_x509_csr(csr_pem)
            response = self._post(order.finalize, messages.CertificateRequest(csr=csr))
            order = messages.Order.from_json(response.json())
        # Finalized: the CA issues the certificate whoever leads now, and only this process
        # holds its key. Fetch it even if the lead is lost meanwhile (the caller keeps it to
        # write later) rather than leave a certificate nobody can use and order another.
        with self._cancellable(None):
            if order.status == messages.STATUS_PROCESSING:
                order = self._poll_order(order_url, {messages.STATUS_PROCESSING}, deadline)
            if order.status != messages.STATUS_VALID or not order.certificate:
                raise AcmeProblemError(
                    f"order {order_url} ended {order.status}", self._order_problem(order)
                )
            fullchain = self._download_chain(order.certificate, request.preferred_chain)
        info = certs.certificate_info(fullchain)
        if not certs.key_matches_certificate(key, fullchain):
            raise AcmeError("CA returned a certificate for a different key")
        return IssuedCertificate(
            key_pem=keys.key_to_pem(key), fullchain_pem=fullchain, info=info, order_url=order_url,
            replaced=request.replaces,
        )

    def _pending_challenges(
        self, order: messages.Order, wanted: ChallengeType
    ) -> list[tuple[str, messages.ChallengeBody, PendingChallenge]]:
        """Fetch each authorization; valid ones (reused) are skipped."""
        out: list[tuple[str, messages.ChallengeBody, PendingChallenge]] = []
        for authz_url in order.authorizations:
            authz = messages.Authorization.from_json(self._get_as_post(authz_url).json())
            domain = authz.identifier.value
            if authz.status == messages.STATUS_VALID:
                continue
            if authz.status != messages.STATUS_PENDING:
                raise ChallengeFailed(domain, wanted.value, self._authz_problem(authz))
            challb = self._pick(authz, wanted)
            chall = challb.chall
            key_authz = chall.key_authorization(self._jwk)
            dns_value = ""
            if isinstance(chall, challenges.DNS01):
                dns_value = chall.validation(self._jwk)
            out.append((authz_url, challb, PendingChallenge(
                type=wanted,
                domain=domain,
                wildcard=bool(authz.wildcard),
                token=chall.encode("token"),
                key_authorization=key_authz,
                dns_value=dns_value,
            )))
        return out

    @staticmethod
    def _pick(authz: messages.Authorization, wanted: ChallengeType) -> messages.ChallengeBody:
        kind = {ChallengeType.HTTP01: challenges.HTTP01, ChallengeType.DNS01: challenges.DNS01}
        for challb in authz.challenges:
            if isinstance(challb.chall, kind[wanted]):
                return challb
        offered = ", ".join(c.chall.typ for c in authz.challenges)
        raise AcmeError(
            f"CA offers no {wanted.value} challenge for {authz.identifier.value} (offers {offered})"
        )

    def _solve(
        self,
        order_url: str,
        pending: Sequence[tuple[str, messages.ChallengeBody, PendingChallenge]],
        solver: ChallengeSolver | None,
        deadline: float,
    ) -> None:
        if not pending or solver is None:
            return
        presented: list[PendingChallenge] = []
        try:
            for _, _, challenge in pending:
                presented.append(challenge)
                solver.present(challenge)
            solver.wait_until_ready([c for _, _, c in pending])
            for _, challb, _ in pending:
                self._post(challb.uri, challb.chall.response(self._jwk))
            order = self._poll_order(order_url, {messages.STATUS_PENDING}, deadline)
            if order.status == messages.STATUS_INVALID:
                self._raise_failed_authz(pending, order)
        finally:
            keep_going: KeepGoing | None = getattr(self._cancel, "keep_going", None)
            if keep_going is not None and presented and not keep_going():
                # Not the leader any more: the next one resumes this order and answers the
                # same challenges; removing them now would pull them from under it.
                log.warning("order %s abandoned: its %d challenges are left to the next leader",
                            order_url, len(presented))
                presented = []
            for challenge in presented:
                try:
                    solver.clean_up(challenge)
                except Exception:  # clean-up of one must not stop clean-up of the others
                    log.exception(
                        "clean-up of %s challenge for %s failed",
                        challenge.type.value, challenge.domain,
                    )

    def _raise_failed_authz(
        self,
        pending: Sequence[tuple[str, messages.ChallengeBody, PendingChallenge]],
        order: messages.Order,
    ) -> None:
        for authz_url, _, challenge in pending:
            authz = messages.Authorization.from_json(self._get_as_post(authz_url).json())
            if authz.status == messages.STATUS_INVALID:
                host = ("*." if challenge.wildcard else "") + challenge.domain
                raise ChallengeFailed(host, challenge.type.value, self._authz_problem(authz))
        raise AcmeProblemError("order became invalid", self._order_problem(order))

    @staticmethod
    def _authz_problem(authz: messages.Authorization) -> Problem:
        for challb in authz.challenges:
            if challb.error is not None:
                p = problem_from(challb.error)
                return Problem(p.type, p.detail, authz.identifier.value, p.subproblems)
        return Problem(type="unknown", detail=f"authorization is {authz.status}",
                       identifier=authz.identifier.value)

    @staticmethod
    def _order_problem(order: messages.Order) -> Problem:
        if order.error is not None:
            return problem_from(order.error)
        return Problem(type="unknown", detail=f"order status {order.status}")

    def _poll_order(self, order_url: str, waiting: set[messages.Status], deadline: float
                    ) -> messages.Order:
        """Poll the order (one request covers every authorization) while it is in `waiting`."""
        delay = self._poll.first
        while True:
            self._sleep(delay)
            response = self._get_order(order_url)
            order = messages.Order.from_json(response.json())
            if order.status not in waiting:
                return order
            advised = parse_retry_after(response.headers.get("Retry-After"))
            delay = advised if advised is not None else min(delay * self._poll.factor,
                                                            self._poll.cap)
            if time.monotonic() + delay > deadline:
                raise OrderTimeout(f"order {order_url} still {order.status} at its deadline")

    def _download_chain(self, cert_url: str, preferred: str | None) -> bytes:
        response = self._get_as_post(cert_url)
        default = response.text.encode()
        if not preferred:
            return default
        chains = [default]
        chains += [self._get_as_post(url).text.encode() for url in _links(response, "alternate")]
        for chain in chains:
            if _top_issuer_cn(chain) == preferred:
                return chain
        return default

    # -- ARI ---------------------------------------------------------------------------------

    def renewal_info(self, fullchain_pem: bytes) -> RenewalWindow | None:
        """The CA's suggested renewal window (RFC 9773), or None when it offers no ARI."""
        cert = certs.split_pem_chain(fullchain_pem)[0]
        return self.renewal_info_for_id(certs.ari_cert_id(cert))

    def renewal_info_for_id(self, cert_id: str) -> RenewalWindow | None:
        """ARI by RFC 9773 CertID (as kept in the Secret's annotation). None when the CA offers
        no ARI; AriMalformed when its answer is not a window; AcmeError when unreachable."""
        return self.ari_reading(cert_id).window

    def ari_reading(self, cert_id: str) -> AriReading:
        """`renewal_info_for_id` with the answer's `Retry-After` (seconds) and
        `explanationURL`; a window of None when the CA offers no ARI. Raises as it does."""
        try:
            base = self.directory["renewalInfo"]
        except KeyError:
            return AriReading(None)
        url = f"{base.rstrip('/')}/{cert_id}"
        try:
            # No content_type: a 200 whose body is not JSON is malformed ARI (parsed below),
            # not a network error.
            response = self._net().get(url, content_type=None)
        except (acme_errors.Error, messages.Error, requests.RequestException) as e:
            raise AcmeError(f"cannot read renewal info at {url}") from e
        try:
            window = messages.RenewalInfo.from_json(response.json()).suggested_window
            start, end = _utc(window.start), _utc(window.end)
        except (jose.DeserializationError, ValueError, TypeError, AttributeError,
                KeyError) as e:
            raise AriMalformed(f"malformed renewal info at {url}: {type(e).__name__}") from e
        # Whole seconds: a chosen moment is persisted as RFC 3339 and compared with the window.
        suggested = RenewalWindow(start.replace(microsecond=0), end.replace(microsecond=0),
                                  cert_id)
        body = response.json()
        explanation = body.get("explanationURL") if isinstance(body, dict) else None
        return AriReading(suggested, parse_retry_after(response.headers.get("Retry-After")),
                          explanation if isinstance(explanation, str) else "")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _links(response: requests.Response, rel: str) -> Iterable[str]:
    header = response.headers.get("Link")
    if not header:
        return []
    return [link["url"] for link in requests.utils.parse_header_links(header)
            if link.get("rel") == rel and "url" in link]


def _top_issuer_cn(chain_pem: bytes) -> str | None:
    chain = certs.split_pem_chain(chain_pem)
    names = chain[-1].issuer.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
