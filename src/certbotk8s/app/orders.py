"""The order code both modes share: survey (discover -> observe -> plan), execute one action
(order, write the Secret, record what happened) and the follow-up in the records.

`renew --once` drives it in app/oneshot/run.py; the controller runs `execute` for one
certificate at a time from its order runner. `survey` is the read-only half (`plan`, `status`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.app.ari import AriReader
from certbotk8s.app.budget import LedgerStore, RenewalBook
from certbotk8s.app.isolation import InternalError, contained, report_internal
from certbotk8s.app.issuers import IssuerRegistry
from certbotk8s.app.records import ARI_MOMENT_HOLD, Records
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import (
    AcmeError,
    AcmeProblemError,
    AcmeTransientError,
    CertbotK8sError,
    KubeConflict,
    OrderAbandoned,
    Outage,
    RetryIntent,
    retry_intent,
)
from certbotk8s.core.model import (
    CaVerdict,
    CertificateInfo,
    ChallengeType,
    DesiredCertificate,
    Discovery,
    IssuedCertificate,
    ObservedSecret,
    RenewalWindow,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.ports import EventRecorder, SecretStore, SourceReader, StoredSecret
from certbotk8s.core.renewal import waits
from certbotk8s.core.renewal.after_order import Backoff, FollowUp
from certbotk8s.core.renewal.ari_timing import worth_reading
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.sources.claimants import claimant
from certbotk8s.core.sources.ownership import discover_owned, failing_claims, holdings
from certbotk8s.core.state import ari_memory, secret_meta
from certbotk8s.core.state import records as rec
from certbotk8s.core.state.observe import observe, with_record, with_verdict
from certbotk8s.core.state.write_race import AfterConflict, after_conflict

log = logging.getLogger(__name__)

LAST_ERROR = secret_meta.LAST_ERROR
LAST_ERROR_AT = secret_meta.LAST_ERROR_AT

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
    ledger: LedgerStore | None = None  # the renewal ledger Secret (recent orders, failed authz)
    # The controller's certificate records (claims, history, backoff, moments): app.records.
    records: Records = field(default_factory=Records)


@dataclass(frozen=True)
class Survey:
    """What the cluster wants and holds, and what a pass would do about it."""

    discovery: Discovery
    observed: dict[SecretRef, ObservedSecret | None]
    ari: dict[SecretRef, RenewalWindow]
    actions: tuple[Action, ...]
    missing_apis: tuple[str, ...] = ()
    ari_problems: dict[SecretRef, str] = field(default_factory=dict)
    ari_memory: dict[SecretRef, dict[str, str | None]] = field(default_factory=dict)
    """ARI windows read anew, for the records (only `renew --once` writes them: `plan` and
    `status` change nothing)."""


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    message: str
    issued: IssuedCertificate | None = field(default=None, repr=False)
    error: CertbotK8sError | None = None
    outage: bool = False  # the order met a service down (`OrderHooks.outage`): no backoff
    deferred: bool = False  # due, but the run stopped starting orders (app.oneshot.run)
    # Set when `issued` was not written: another writer's newer certificate, kept in the Secret.
    kept: CertificateInfo | None = None
    # A certificate the CA issued that could not be written: the API server gave no answer or
    # this replica stopped leading (`unwritten_cause`). The controller keeps it to write later.
    unwritten: IssuedCertificate | None = field(default=None, repr=False)


def survey(deps: PassDeps, namespaces: Sequence[str] = (), read_ari: bool = True,
           ari_reader: AriReader | None = None, workers: int = 1) -> Survey:
    snapshot = deps.sources.list_sources(namespaces)
    deps.records.load()
    kept = deps.records.snapshot()
    held = holdings(kept, deps.clock(), deps.config.tenants.claim_grace)
    found = discover_owned(snapshot.ingresses, snapshot.istio_gateways,
                           snapshot.gateway_api_gateways, snapshot.reference_grants,
                           deps.config, held, failing_claims(kept))
    observed, broken = _observe_all(deps, found.desired)
    readings = AriReadings()
    if read_ari:
        readings = read_windows(ari_reader or AriReader(deps.issuers), found.desired,
                                observed, deps.clock(), workers)
    ari, problems = readings.windows, readings.problems
    observed = {ref: with_verdict(seen, readings.verdicts.get(ref, CaVerdict.UNCHECKED))
                for ref, seen in observed.items()}
    actions = plan([d for d in found.desired if d.secret not in broken], observed, deps.clock(),
                   ari)
    actions = tuple(sorted((*actions, *broken.values()), key=lambda a: a.desired.secret))
    for action in actions:
        if action.renewal is not None and action.renewal.ignored_window is not None:
            problems.setdefault(action.desired.secret,
                                f"ARI window ignored: {action.renewal.ignored_window}")
        if action.renewal is not None and action.renewal.ari_held(deps.clock()):
            problems.setdefault(action.desired.secret, str(action.renewal.ari_capped))
    return Survey(found, observed, ari, actions, snapshot.missing_apis, problems,
                  readings.memory)


def _observe_all(deps: PassDeps, desired: Sequence[DesiredCertificate],
                 ) -> tuple[dict[SecretRef, ObservedSecret | None], dict[SecretRef, Action]]:
    """Each desired Secret read and observed; one that raises is left out of the plan and
    gets an INTERNAL_ERROR refusal instead (the pass reports it as failed)."""
    observed: dict[SecretRef, ObservedSecret | None] = {}
    broken: dict[SecretRef, Action] = {}
    for d in desired:
        seen = contained(d, "reading", partial(_observe_one, deps, d.secret), _as_failure)
        if isinstance(seen, InternalError):
            broken.setdefault(d.secret, Action(ActionKind.REFUSE, d, Reason(
                ReasonCode.INTERNAL_ERROR, str(seen))))
        else:
            observed[d.secret] = seen
    return observed, broken


def _observe_one(deps: PassDeps, ref: SecretRef) -> ObservedSecret | InternalError | None:
    stored = deps.secrets.read(ref.namespace, ref.name)
    return with_record(observe_stored(deps, stored), deps.records.get(ref))


def observe_stored(deps: PassDeps, stored: StoredSecret | None) -> ObservedSecret | None:
    """`stored` observed, cert-manager's Secrets adoptable when the config migrates from it."""
    if stored is None:
        return None
    return observe(stored, adopt_cert_manager=deps.config.migration.from_cert_manager)


def _as_failure(error: InternalError) -> InternalError:
    return error



def read_windows(reader: AriReader, desired: Sequence[DesiredCertificate],
                 observed: Mapping[SecretRef, ObservedSecret | None], now: datetime,
                 workers: int = 1) -> AriReadings:
    """ARI windows for managed, parsable certificates not expired at `now`, and what went
    wrong per Secret (an ARI failure only loses the window: the renewal falls back) or the
    CA's explanationURL. A window remembered in the record (core.state.ari_memory) is used
    until the CA's Retry-After has passed; what was read anew is returned to remember. For a
    certificate with no recorded issuer, whether the CA knows it (model.CaVerdict)."""
    readings = AriReadings()

    def one(d: DesiredCertificate) -> WindowRead:
        return contained(d, "reading the ARI window of",
                         partial(_window, reader, d, observed.get(d.secret), now), _no_window)

    if workers > 1:  # one certificate's read is one worker's; the pool bounds how many at once
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="certbotk8s-ari") as pool:
            answers = list(pool.map(one, desired))
    else:
        answers = [one(d) for d in desired]
    for d, (window, problem, memory, verdict) in zip(desired, answers, strict=True):
        if window is not None:
            readings.windows[d.secret] = window
        if problem is not None:
            readings.problems[d.secret] = problem
        if memory is not None:
            readings.memory[d.secret] = memory
        seen = observed.get(d.secret)
        if seen is not None and secret_meta.ISSUER not in seen.recorded:
            readings.verdicts[d.secret] = verdict
    return readings


@dataclass
class AriReadings:
    windows: dict[SecretRef, RenewalWindow] = field(default_factory=dict)
    problems: dict[SecretRef, str] = field(default_factory=dict)
    memory: dict[SecretRef, dict[str, str | None]] = field(default_factory=dict)
    """Record changes: windows read anew (to remember), or remembered ones to forget."""
    verdicts: dict[SecretRef, CaVerdict] = field(default_factory=dict)
    """For certificates with no recorded issuer: does the CA know them (ARI)?"""


WindowRead = tuple[RenewalWindow | None, str | None, dict[str, str | None] | None, CaVerdict]
UNCHECKED = CaVerdict.UNCHECKED


def _window(reader: AriReader, d: DesiredCertificate, seen: ObservedSecret | None,
            now: datetime) -> WindowRead:
    if seen is None or not seen.managed or seen.certificate is None:
        return None, None, None, UNCHECKED
    if seen.recorded.get(secret_meta.ISSUER, d.spec.issuer) != d.spec.issuer:
        return None, None, None, UNCHECKED  # a different CA's certificate: not ours to ask
    info = seen.certificate
    if not info.ari_cert_id or not worth_reading(info, now):
        return None, None, None, UNCHECKED  # an expired certificate is due anyway: not asked
    kept = ari_memory.remembered(seen.recorded, info, now)
    if kept is not None:
        return kept, None, None, CaVerdict.KNOWN  # the CA gave this window for it
    answer = reader.read(d.spec.issuer, info.ari_cert_id)
    memory = (ari_memory.to_remember(info, answer.window, answer.retry_after, now)
              if answer.window is not None else
              ari_memory.forgotten() if seen.recorded.get(ari_memory.ARI_FOR) else None)
    if answer.problem is None and answer.explanation_url:
        return (answer.window, f"the CA explains its ARI window at {answer.explanation_url}",
                memory, answer.verdict)
    return answer.window, answer.problem, memory, answer.verdict


def _no_window(error: InternalError) -> WindowRead:
    return None, str(error), None, UNCHECKED  # the renewal falls back, as for any failure


def order_id_for(desired: DesiredCertificate) -> str:
    """A stable short id for one Secret's order (names routing objects, labels)."""
    digest = hashlib.sha256(f"{desired.secret}|{','.join(desired.spec.hosts)}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class OrderHooks:
    """Extras: `on_order(url, sends_replaces)` when the CA created an order (the budget records
    it; the controller persists the URL); continue an interrupted order; stop working on it
    (`keep_going` says no: leadership lost) and leave it to the next leader; `outage(error)`
    decides (and records) whether a failure was a service being down: then it is reported by
    whoever holds the certificate for that outage, not as IssuanceFailed."""

    on_order: Callable[[str, bool], None] | None = None
    resume_url: str | None = None
    keep_going: Callable[[], bool] | None = None
    outage: Callable[[CertbotK8sError], bool] | None = None
    # The source's certificate for this Secret as it is now (None: unknown), asked on a 409.
    current: Callable[[], DesiredCertificate | None] | None = None


def execute(deps: PassDeps, action: Action, observed: ObservedSecret | None,
            hooks: OrderHooks | None = None) -> Outcome:
    """Carry out one ISSUE or RENEW action; report the others. Never raises CertbotK8sError."""
    d = action.desired
    hooks = hooks or OrderHooks()
    if action.kind is ActionKind.NOTHING:
        when = action.next_renewal.strftime("%Y-%m-%d %H:%M UTC") if action.next_renewal else "?"
        persist_moment(deps, action)
        return Outcome(action, True, f"up to date; renews {when} ({action.reason.message})")
    if action.reason.code is ReasonCode.INTERNAL_ERROR:  # survey could not read it
        return internal_outcome(deps, action, InternalError(action.reason.message))
    if action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
        reason = "SecretNotManaged" if action.kind is ActionKind.REFUSE else "SecretConflict"
        message = action.reason.message
        post_event(deps, d, "Warning", reason, message)
        return Outcome(action, False, message)
    if action.kind is ActionKind.REPAIR:  # the record was lost or is new: rebuilt, no order
        record = deps.records.get(d.secret)
        repairs: dict[str, str | None] = dict(action.annotations)
        if secret_meta.HOSTS in repairs and rec.CLAIMED_SINCE not in record:
            repairs[rec.CLAIMED_SINCE] = secret_meta.format_time(deps.clock())
        deps.records.update(d.secret, repairs)
        log.info("%s: record rebuilt: %s", d.secret, action.reason.message)
        return Outcome(action, True, f"repaired: {action.reason.message}")
    if action.reason.code is ReasonCode.FOREIGN_CERTIFICATE:  # reported, never adopted silently
        post_event(deps, d, "Warning", str(ReasonCode.FOREIGN_CERTIFICATE), action.reason.message)
    issued: IssuedCertificate | None = None
    try:
        issued = _order(deps, action, observed, hooks)
        if hooks.keep_going is not None and not hooks.keep_going():
            raise OrderAbandoned("no longer the leader: the certificate is not written here")
        stored = store(deps, d, issued, observed, hooks.current)
    except OrderAbandoned as e:  # not a failure: the next leader carries on with the order
        log.warning("%s -> %s: %s", d.source, d.secret, e)
        return Outcome(action, False, str(e), error=e, unwritten=issued)
    except CertbotK8sError as e:
        unwritten = issued if issued is not None and unwritten_cause(e) else None
        if hooks.keep_going is not None and not hooks.keep_going():
            # Whatever failed, this replica lost the lead meanwhile: the order is not its own
            # to report or give up any more.
            log.warning("%s -> %s: left to the next leader after: %s", d.source, d.secret, e)
            return Outcome(action, False, str(e), error=OrderAbandoned(str(e)),
                           unwritten=unwritten)
        message = f"{'renewal' if action.kind is ActionKind.RENEW else 'issuance'} failed: {e}"
        if unwritten is not None:  # not the order's fault: no Event, no backoff
            log.warning("%s -> %s: certificate issued, but writing it failed: %s", d.source,
                        d.secret, e)
            return Outcome(action, False, message, error=e, unwritten=unwritten)
        log.warning("%s -> %s: %s", d.source, d.secret, message)
        outage = hooks.outage(e) if hooks.outage is not None else False
        if not (outage or isinstance(e, Outage)):  # an outage's Event: whoever waits for it
            post_event(deps, d, "Warning", "IssuanceFailed", message)
        return Outcome(action, False, message, error=e, outage=outage)
    return _stored(deps, action, issued, stored)


def unwritten_cause(e: CertbotK8sError) -> bool:
    """Whether a failed Secret write is worth trying again later with the same certificate: the
    API server gave no answer or a 5xx, or the lead was lost (not a refusal such as 403, 409 or
    a foreign Secret)."""
    return retry_intent(e) in (RetryIntent.API_AWAY, RetryIntent.ABANDONED)


def api_away(e: BaseException) -> bool:
    """Whether `e` came from the API server giving no answer or a 5xx (core.errors classifies
    it, also behind an error that wrapped it, e.g. HTTP-01 routing not published)."""
    return retry_intent(e) is RetryIntent.API_AWAY


def write_unwritten(deps: PassDeps, action: Action, issued: IssuedCertificate,
                    observed: ObservedSecret | None,
                    current: Callable[[], DesiredCertificate | None] | None = None) -> Outcome:
    """Write a certificate issued earlier whose write failed (no new order). Never raises."""
    d = action.desired
    try:
        stored = store(deps, d, issued, observed, current)
    except CertbotK8sError as e:
        message = f"writing the certificate issued earlier (serial {issued.info.serial}) " \
                  f"failed again: {e}"
        log.warning("%s -> %s: %s", d.source, d.secret, message)
        return Outcome(action, False, message, error=e,
                       unwritten=issued if unwritten_cause(e) else None)
    log.info("%s: wrote the certificate issued earlier (serial %s); no new order", d.secret,
             issued.info.serial)
    return _stored(deps, action, issued, stored)


def _stored(deps: PassDeps, action: Action, issued: IssuedCertificate,
            stored: Stored) -> Outcome:
    if stored.kept is not None:  # done: the Secret holds a good certificate, not ours
        return Outcome(action, True, stored.message, issued, kept=stored.kept)
    return Outcome(action, True, announce(deps, action, issued), issued)


def persist_moment(deps: PassDeps, action: Action) -> None:
    """Keep the renewal moment chosen in the ARI window in the Secret's record (a restart,
    another replica or the next CronJob run renews at the same moment)."""
    if action.kind is ActionKind.NOTHING and action.annotations:
        deps.records.update(action.desired.secret, dict(action.annotations))


def announce(deps: PassDeps, action: Action, issued: IssuedCertificate) -> str:
    """The Issued/Renewed Event for a written certificate; returns its message."""
    d = action.desired
    verb = "Renewed" if action.kind is ActionKind.RENEW else "Issued"
    expires = issued.info.not_after.strftime("%Y-%m-%d %H:%M UTC")
    message = (f"{verb.lower()} certificate for {', '.join(d.spec.hosts)} into Secret "
               f"{d.secret} (serial {issued.info.serial}, expires {expires}; "
               f"{action.reason.message})")
    post_event(deps, d, "Normal", verb, message)
    return message


def _order(deps: PassDeps, action: Action, observed: ObservedSecret | None,
           hooks: OrderHooks) -> IssuedCertificate:
    d = action.desired
    issuer = deps.issuers.issuer(d.spec.issuer)
    engine = deps.issuers.engine(d.spec.issuer)
    # ARI `replaces` for a renewal from the same CA that keeps at least one name (the budget
    # decides exemption by the same rule).
    replaces = replaced_cert_id(action.kind is ActionKind.RENEW, d, observed)
    # The order's deadline and propagation wait: as configured, capped only by the serving
    # certificate's life (core.renewal.waits).
    serving = observed.certificate if observed is not None else None
    solver_config = deps.config.solver
    waited = waits.order_waits(
        solver_config.dns01.propagation_timeout, solver_config.order_timeout,
        d.spec.challenge is ChallengeType.DNS01,
        serving.not_after if serving is not None else None, deps.clock())
    if waited.why:
        log.info("%s: %s", d.secret, waited.why)
    request = OrderRequest(hosts=d.spec.hosts, challenge=d.spec.challenge,
                           key_type=d.spec.key_type, profile=d.spec.profile,
                           replaces=replaces, preferred_chain=issuer.preferred_chain,
                           deadline=waited.deadline.total_seconds())
    solvers = deps.solvers.for_order(d, order_id_for(d), hooks.keep_going, waited.propagation)

    def on_order(sends_replaces: bool) -> Callable[[str], None]:
        def record(url: str) -> None:
            if hooks.on_order is not None:
                hooks.on_order(url, sends_replaces)
        return record

    if hooks.resume_url is not None:
        try:
            return engine.resume(hooks.resume_url, request, solvers, hooks.keep_going)
        except (OrderAbandoned, AcmeTransientError):
            raise  # not this order's fault: neither a reason to place another
        except AcmeError as e:
            log.info("%s: cannot continue order %s (%s); placing a new one", d.secret,
                     hooks.resume_url, e)
    try:
        return engine.issue(request, solvers, on_order=on_order(replaces is not None),
                            keep_going=hooks.keep_going)
    except AcmeProblemError as e:
        # The old certificate was already replaced (e.g. an earlier order completed but its
        # Secret write was lost), the CA cannot match it (Pebble: a 500 serverInternal after
        # it forgot the certificate's order), or another account ordered it (`unauthorized`:
        # an adopted certificate, docs/migrating.md): order again without `replaces`.
        if replaces is None or not e.problem.type.endswith(
                (":alreadyReplaced", ":malformed", ":serverInternal", ":unauthorized")):
            raise
        log.info("%s: CA refused replaces=%s (%s); ordering without it", d.secret, replaces,
                 e.problem)
        return engine.issue(
            OrderRequest(hosts=request.hosts, challenge=request.challenge,
                         key_type=request.key_type, profile=request.profile,
                         preferred_chain=request.preferred_chain, deadline=request.deadline),
            solvers, on_order=on_order(False), keep_going=hooks.keep_going,
        )


STORE_ATTEMPTS = 3  # writes of one new certificate when other writers keep changing the Secret


@dataclass(frozen=True)
class Stored:
    """What `store` did: wrote ours, or kept `kept` (another writer's newer certificate that
    needs nothing) and wrote ours nowhere; `message` says why."""

    kept: CertificateInfo | None = None
    message: str = ""


def store(deps: PassDeps, d: DesiredCertificate, issued: IssuedCertificate,
          observed: ObservedSecret | None,
          current: Callable[[], DesiredCertificate | None] | None = None) -> Stored:
    """Write the new certificate with resourceVersion; the old one stays until this succeeds.

    On a 409 the Secret is read again and core.state.write_race decides: write ours on the new
    version, or keep a newer certificate another certbotk8s writer stored meanwhile (judged
    against what the source wants now, `current()`, when given)."""
    now = deps.clock()
    meta = secret_meta.build_secret_metadata(d, issued.info, now)
    # Issuance history for the rate-limit budget (what this installation issued in 7 days),
    # from the controller's record: the Secret's copy is for people only.
    record = deps.records.get(d.secret)
    meta.annotations[secret_meta.ISSUANCE_HISTORY] = secret_meta.append_history(
        record.get(secret_meta.ISSUANCE_HISTORY), now, now, bool(issued.replaced))
    if issued.replaced:
        meta.annotations[secret_meta.LAST_ORDER_REPLACED] = "true"
    version = observed.resource_version if observed is not None else None
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            deps.secrets.write_tls(d.secret.namespace, d.secret.name, issued.key_pem,
                                   issued.fullchain_pem, meta.labels, meta.annotations, version)
            # The new record: what was written, the claim's start kept; failures, moment
            # and release are gone with the old certificate. Its ARI moment follows within
            # seconds (the controller's ARI refresh): one write for both (app.records).
            deps.records.replace(d.secret, {
                **meta.annotations,
                rec.CLAIMED_SINCE: rec.claim_start(record, d.spec.hosts, now)},
                hold=ARI_MOMENT_HOLD)
            return Stored()
        except KubeConflict as e:
            if attempt == STORE_ATTEMPTS:
                raise
            # Someone wrote the Secret since we read it (the API server said 409).
            conflict = e
        stored = deps.secrets.read(d.secret.namespace, d.secret.name)
        deps.records.reload(d.secret)  # the other writer may have recorded an issuance
        record = deps.records.get(d.secret)
        fresh = with_record(observe_stored(deps, stored), record)
        decision = after_conflict(d, observed, fresh, issued.info, deps.clock(),
                                  current() if current is not None else None)
        if decision.kind is AfterConflict.REFUSE:
            raise KubeConflict(f"Secret {d.secret}: {decision.message}; not overwritten")
        if decision.kind is AfterConflict.ALREADY_OURS:
            log.info("%s: %s; %s", d.secret, conflict, decision.message)
            return Stored()
        if decision.kind is AfterConflict.KEEP_THEIRS:
            assert fresh is not None and fresh.certificate is not None
            log.warning("%s: %s; %s", d.secret, conflict, decision.message)
            _count_issuance(deps, d, now, bool(issued.replaced))
            return Stored(kept=fresh.certificate, message=decision.message)
        # Ours goes on the fresh version (what they put there besides certbotk8s's part is
        # kept by the adapter).
        log.info("%s: %s; %s: writing again on the current version", d.secret, conflict,
                 decision.message)
        version = fresh.resource_version if fresh is not None else None
        meta.annotations[secret_meta.ISSUANCE_HISTORY] = secret_meta.append_history(
            record.get(secret_meta.ISSUANCE_HISTORY), now, now, bool(issued.replaced))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _count_issuance(deps: PassDeps, d: DesiredCertificate, now: datetime,
                    replaced: bool) -> None:
    """Our certificate was issued (the CA counts it against its limits unless its order sent
    `replaces`) though not written: add it to the record's issued-7d history so the budget
    stays right."""
    history = secret_meta.append_history(
        deps.records.get(d.secret).get(secret_meta.ISSUANCE_HISTORY), now, now, replaced)
    deps.records.update(d.secret, {secret_meta.ISSUANCE_HISTORY: history})


def internal_outcome(deps: PassDeps, action: Action, error: InternalError) -> Outcome:
    """The failed Outcome of a certificate whose handling raised (`isolation.contained`), with
    its Warning Event."""
    report_internal(deps.events, action.desired, error)
    return Outcome(action, False, str(error), error=error)


def post_event(deps: PassDeps, d: DesiredCertificate, type_: str, reason: str,
               message: str) -> None:
    if d.source_kind is SourceKind.CONFIG_CERTIFICATE:
        log.info("%s -> Secret %s: %s: %s", d.source, d.secret, reason, message)
        return
    deps.events.record(d.source, type_, reason, message)


def report_problems(deps: PassDeps, found: Discovery) -> None:
    for problem in found.problems:
        log.warning("%s refused: %s: %s", problem.source, problem.reason, problem.message)
        # The config's own certificates get theirs too (in the controller namespace).
        deps.events.record(problem.source, "Warning", problem.reason, problem.message)
    for notice in found.notices:  # refuses nothing: a Normal Event
        log.info("%s: %s: %s", notice.source, notice.reason, notice.message)
        deps.events.record(notice.source, "Normal", notice.reason, notice.message)


def tidy_records(deps: PassDeps, wanted: Iterable[SecretRef], now: datetime,
                 namespaces: Sequence[str] = ()) -> None:
    """Mark the records whose Secret no source wants as released (their claim lapses after
    the grace period), unmark re-wanted ones, and drop records with nothing left to count."""
    records = deps.records.snapshot()
    for ref, change in rec.release_changes(records, wanted, now, namespaces).items():
        deps.records.update(ref, change)
    grace = deps.config.tenants.claim_grace
    for ref, record in records.items():
        if (not namespaces or ref.namespace in namespaces) and rec.expired(record, now, grace):
            deps.records.remove(ref)
def annotate_error(deps: PassDeps, ref: SecretRef, message: str, now: datetime) -> None:
    """Keep `message` as the Secret's last error in its record (`certbotk8s status`)."""
    deps.records.update(ref, {LAST_ERROR: message[:secret_meta.LAST_ERROR_MAX],
                              LAST_ERROR_AT: secret_meta.format_time(now)})


def record_follow_up(deps: PassDeps, book: RenewalBook, actions: Sequence[Action],
                     observed: ObservedSecret | None, outcome: Outcome, follow: FollowUp,
                     now: datetime) -> None:
    """What core.renewal.after_order decided, in the budget and the records, for the Secrets that
    shared one order (`observed` is the first one's): failed authorizations counted, backoff
    counted for every Secret or cleared. The order ends in the budget: a certificate the CA
    issued spends it at once (`RenewalBook.issued`), written or not; none gives back what the
    order held (`RenewalBook.order_ended`)."""
    got = outcome.issued or outcome.unwritten
    first = actions[0].desired
    if got is not None:
        book.issued(claimant(first), first.spec.hosts, deps.clock(),
                    exempt=got.replaced is not None)
    else:
        book.order_ended(claimant(first), first.spec.hosts)
    if follow.failed_authz:
        book.authz_failed(follow.failed_authz, now)  # only the authorization that failed
    if follow.backoff is Backoff.KEEP:
        return
    for index, action in enumerate(actions):
        ref = action.desired.secret
        if follow.backoff is Backoff.CLEAR:
            book.succeeded(ref)
            continue
        seen = observed if index == 0 else _read(deps, ref)
        state = book.failed(ref, seen, now, outcome.message, action.desired.spec)
        log.warning("%s: attempt %d failed, next attempt at %s", ref, state.failures,
                    state.next_attempt)


def _read(deps: PassDeps, ref: SecretRef) -> ObservedSecret | None:
    try:
        stored = deps.secrets.read(ref.namespace, ref.name)
    except CertbotK8sError:
        return None
    return with_record(observe_stored(deps, stored), deps.records.get(ref))
