"""One pass: discover -> observe -> plan -> (issue or renew) -> write Secrets -> report.

`renew --once` runs it once; the controller runs `execute` for one certificate at a time from
its scheduler. `survey` is the read-only half (used by `plan` and `status`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from certbotk8s.adapters.acme_engine import OrderRequest
from certbotk8s.app.issuers import IssuerRegistry
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core import secret_meta
from certbotk8s.core.config import Config
from certbotk8s.core.errors import (
    AcmeError,
    AcmeProblemError,
    AcmeTransientError,
    CertbotK8sError,
    KubeConflict,
    OrderAbandoned,
)
from certbotk8s.core.model import (
    DesiredCertificate,
    Discovery,
    IssuedCertificate,
    ObservedSecret,
    RenewalWindow,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.observe import observe
from certbotk8s.core.ownership import Holding, discover_owned
from certbotk8s.core.plan import Action, ActionKind, plan
from certbotk8s.core.ports import EventRecorder, SecretStore, SourceReader

log = logging.getLogger(__name__)

LAST_ERROR = "certbotk8s.io/last-error"
LAST_ERROR_AT = "certbotk8s.io/last-error-at"

Progress = Callable[[str], None]


@dataclass
class PassDeps:
    config: Config
    sources: SourceReader
    secrets: SecretStore
    events: EventRecorder
    issuers: IssuerRegistry
    solvers: SolverFactory
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass(frozen=True)
class Survey:
    """What the cluster wants and holds, and what a pass would do about it."""

    discovery: Discovery
    observed: dict[SecretRef, ObservedSecret | None]
    ari: dict[SecretRef, RenewalWindow]
    actions: tuple[Action, ...]
    missing_apis: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    message: str
    issued: IssuedCertificate | None = field(default=None, repr=False)
    error: CertbotK8sError | None = None


@dataclass(frozen=True)
class PassReport:
    survey: Survey
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> bool:
        return bool(self.survey.discovery.problems) or any(not o.ok for o in self.outcomes)


def survey(deps: PassDeps, namespaces: Sequence[str] = (), read_ari: bool = True) -> Survey:
    snapshot = deps.sources.list_sources(namespaces)
    held = [Holding.of(SecretRef(s.namespace, s.name), s.annotations)
            for s in deps.secrets.list_managed()]
    found = discover_owned(snapshot.ingresses, snapshot.istio_gateways,
                           snapshot.gateway_api_gateways, snapshot.reference_grants,
                           deps.config, held)
    observed: dict[SecretRef, ObservedSecret | None] = {}
    for desired in found.desired:
        stored = deps.secrets.read(desired.secret.namespace, desired.secret.name)
        observed[desired.secret] = observe(stored) if stored is not None else None
    ari = _read_ari(deps, found.desired, observed) if read_ari else {}
    actions = plan(found.desired, observed, deps.clock(), ari)
    return Survey(found, observed, ari, actions, snapshot.missing_apis)


def _read_ari(deps: PassDeps, desired: Sequence[DesiredCertificate],
              observed: dict[SecretRef, ObservedSecret | None]) -> dict[SecretRef, RenewalWindow]:
    """ARI windows for managed, parsable certificates; an ARI failure only loses the window."""
    windows: dict[SecretRef, RenewalWindow] = {}
    for d in desired:
        seen = observed.get(d.secret)
        if seen is None or not seen.managed or seen.certificate is None:
            continue
        if seen.annotations.get(secret_meta.ISSUER, d.spec.issuer) != d.spec.issuer:
            continue  # a different CA's certificate: its ARI is not ours to ask
        cert_id = seen.certificate.ari_cert_id
        if not cert_id:
            continue
        try:
            window = deps.issuers.engine(d.spec.issuer).renewal_info_for_id(cert_id)
        except CertbotK8sError as e:
            log.warning("ARI for %s unavailable: %s", d.secret, e)
            continue
        if window is not None:
            windows[d.secret] = window
    return windows


def order_id_for(desired: DesiredCertificate) -> str:
    """A stable short id for one Secret's order (names routing objects, labels)."""
    digest = hashlib.sha256(f"{desired.secret}|{','.join(desired.spec.hosts)}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class OrderHooks:
    """Controller extras: persist a new order's URL; continue an interrupted order; stop
    working on it (`keep_going` says no: leadership lost) and leave it to the next leader."""

    on_order: Callable[[str], None] | None = None
    resume_url: str | None = None
    keep_going: Callable[[], bool] | None = None


def execute(deps: PassDeps, action: Action, observed: ObservedSecret | None,
            hooks: OrderHooks | None = None) -> Outcome:
    """Carry out one ISSUE or RENEW action; report the others. Never raises CertbotK8sError."""
    d = action.desired
    hooks = hooks or OrderHooks()
    if action.kind is ActionKind.NOTHING:
        when = action.next_renewal.strftime("%Y-%m-%d %H:%M UTC") if action.next_renewal else "?"
        return Outcome(action, True, f"up to date; renews {when} ({action.reason.message})")
    if action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
        reason = "SecretNotManaged" if action.kind is ActionKind.REFUSE else "SecretConflict"
        message = action.reason.message
        _event(deps, d, "Warning", reason, message)
        return Outcome(action, False, message)
    try:
        issued = _order(deps, action, observed, hooks)
        if hooks.keep_going is not None and not hooks.keep_going():
            raise OrderAbandoned("no longer the leader: the certificate is not written here")
        store(deps, d, issued, observed)
    except OrderAbandoned as e:  # not a failure: the next leader carries on with the order
        log.warning("%s -> %s: %s", d.source, d.secret, e)
        return Outcome(action, False, str(e), error=e)
    except CertbotK8sError as e:
        if hooks.keep_going is not None and not hooks.keep_going():
            # Whatever failed, this replica lost the lead meanwhile: the order is not its own
            # to report or give up any more.
            log.warning("%s -> %s: left to the next leader after: %s", d.source, d.secret, e)
            return Outcome(action, False, str(e), error=OrderAbandoned(str(e)))
        message = f"{'renewal' if action.kind is ActionKind.RENEW else 'issuance'} failed: {e}"
        log.warning("%s -> %s: %s", d.source, d.secret, message)
        _event(deps, d, "Warning", "IssuanceFailed", message)
        if observed is not None and observed.managed:
            deps.secrets.set_annotations(d.secret.namespace, d.secret.name, {
                LAST_ERROR: message[:1000],
                LAST_ERROR_AT: secret_meta.format_time(deps.clock()),
            })
        return Outcome(action, False, message, error=e)
    return Outcome(action, True, announce(deps, action, issued), issued)


def announce(deps: PassDeps, action: Action, issued: IssuedCertificate) -> str:
    """The Issued/Renewed Event for a written certificate; returns its message."""
    d = action.desired
    verb = "Renewed" if action.kind is ActionKind.RENEW else "Issued"
    expires = issued.info.not_after.strftime("%Y-%m-%d %H:%M UTC")
    message = (f"{verb.lower()} certificate for {', '.join(d.spec.hosts)} into Secret "
               f"{d.secret} (serial {issued.info.serial}, expires {expires}; "
               f"{action.reason.message})")
    _event(deps, d, "Normal", verb, message)
    return message


def _order(deps: PassDeps, action: Action, observed: ObservedSecret | None,
           hooks: OrderHooks) -> IssuedCertificate:
    d = action.desired
    issuer = deps.issuers.issuer(d.spec.issuer)
    engine = deps.issuers.engine(d.spec.issuer)
    replaces = None
    # ARI `replaces` only for a true renewal: same CA, same names. A certificate whose hosts
    # changed is a new one (the CA would refuse or mis-count it as a replacement).
    if (action.kind is ActionKind.RENEW and observed is not None
            and observed.certificate is not None
            and observed.annotations.get(secret_meta.ISSUER) == d.spec.issuer
            and set(observed.certificate.sans) == set(d.spec.hosts)):
        replaces = observed.certificate.ari_cert_id or None
    request = OrderRequest(hosts=d.spec.hosts, challenge=d.spec.challenge,
                           key_type=d.spec.key_type, profile=d.spec.profile,
                           replaces=replaces, preferred_chain=issuer.preferred_chain)
    solvers = deps.solvers.for_order(d, order_id_for(d), hooks.keep_going)
    if hooks.resume_url is not None:
        try:
            return engine.resume(hooks.resume_url, request, solvers, hooks.keep_going)
        except (OrderAbandoned, AcmeTransientError):
            raise  # not this order's fault: neither a reason to place another
        except AcmeError as e:
            log.info("%s: cannot continue order %s (%s); placing a new one", d.secret,
                     hooks.resume_url, e)
    try:
        return engine.issue(request, solvers, on_order=hooks.on_order,
                            keep_going=hooks.keep_going)
    except AcmeProblemError as e:
        # The old certificate was already replaced (e.g. an earlier order completed but its
        # Secret write was lost) or the CA cannot match it: order again without `replaces`.
        if replaces is None or not e.problem.type.endswith((":alreadyReplaced", ":malformed")):
            raise
        log.info("%s: CA refused replaces=%s (%s); ordering without it", d.secret, replaces,
                 e.problem)
        return engine.issue(
            OrderRequest(hosts=request.hosts, challenge=request.challenge,
                         key_type=request.key_type, profile=request.profile,
                         preferred_chain=request.preferred_chain),
            solvers, on_order=hooks.on_order, keep_going=hooks.keep_going,
        )


def store(deps: PassDeps, d: DesiredCertificate, issued: IssuedCertificate,
           observed: ObservedSecret | None) -> None:
    """Write the new certificate with resourceVersion; the old one stays until this succeeds."""
    now = deps.clock()
    meta = secret_meta.build_secret_metadata(d, issued.info, now)
    # Issuance history for the rate-limit budget (what this installation issued in 7 days).
    previous = observed.annotations.get(secret_meta.ISSUANCE_HISTORY) if observed else None
    meta.annotations[secret_meta.ISSUANCE_HISTORY] = secret_meta.append_history(
        previous, now, now)
    if issued.replaced:
        meta.annotations[secret_meta.LAST_ORDER_REPLACED] = "true"
    version = observed.resource_version if observed is not None else None
    try:
        deps.secrets.write_tls(d.secret.namespace, d.secret.name, issued.key_pem,
                               issued.fullchain_pem, meta.labels, meta.annotations, version)
        return
    except KubeConflict:
        pass
    # Someone wrote the Secret since we read it. Retry once on the fresh version, but only if
    # it is still ours; a Secret that became foreign is never overwritten.
    fresh = deps.secrets.read(d.secret.namespace, d.secret.name)
    if fresh is not None and not secret_meta.is_managed(fresh.labels):
        raise KubeConflict(f"Secret {d.secret} was taken over by another owner; not overwritten")
    deps.secrets.write_tls(d.secret.namespace, d.secret.name, issued.key_pem,
                           issued.fullchain_pem, meta.labels, meta.annotations,
                           fresh.resource_version if fresh is not None else None)


def _event(deps: PassDeps, d: DesiredCertificate, type_: str, reason: str, message: str) -> None:
    if d.source_kind is SourceKind.DEFAULT_CERTIFICATE:
        log.info("default certificate %s: %s: %s", d.secret, reason, message)
        return
    deps.events.record(d.source, type_, reason, message)


def report_problems(deps: PassDeps, found: Discovery) -> None:
    for problem in found.problems:
        log.warning("%s refused: %s: %s", problem.source, problem.reason, problem.message)
        # The config's default certificate gets its Event too (in the controller namespace).
        deps.events.record(problem.source, "Warning", problem.reason, problem.message)


def run_pass(deps: PassDeps, namespaces: Sequence[str] = (),
             progress: Progress = lambda line: None) -> PassReport:
    """Issue or renew everything due, one certificate after another, and report."""
    current = survey(deps, namespaces)
    report_problems(deps, current.discovery)
    for problem in current.discovery.problems:
        progress(f"REFUSED  {problem.source}: {problem.reason}: {problem.message}")
    outcomes: list[Outcome] = []
    total = len(current.actions)
    for index, action in enumerate(current.actions, 1):
        d = action.desired
        label = f"[{index}/{total}] {d.source} -> Secret {d.secret} ({', '.join(d.spec.hosts)})"
        if action.kind in (ActionKind.ISSUE, ActionKind.RENEW):
            progress(f"{label}: {action.kind.value.lower()} ({action.reason.message}) ...")
        outcome = execute(deps, action, current.observed.get(d.secret))
        outcomes.append(outcome)
        status = "ok" if outcome.ok else "FAILED"
        progress(f"{label}: {status}: {outcome.message}")
    return PassReport(current, tuple(outcomes))
