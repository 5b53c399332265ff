"""What one `renew --once` pass did: the summary line and, optionally, a Pushgateway push.

The CronJob mode has no /metrics endpoint; the push carries the same per-certificate series as
the controller (`certbotk8s_certificate_*`, from core.renewal.readiness) plus the pass's counts,
under job `certbotk8s-renew`, so the certificate alerts cover both modes, and
`certbotk8s_pass_last_run_timestamp_seconds` feeds the CronJob's own freshness alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from certbotk8s.app.isolation import InternalError
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.oneshot.run import PassReport, ari_held
from certbotk8s.core.model import ObservedSecret, SecretRef
from certbotk8s.core.renewal.plan import ActionKind
from certbotk8s.core.renewal.readiness import certificate_rows

PUSH_JOB = "certbotk8s-renew"


@dataclass(frozen=True)
class PassSummary:
    issued: int
    failed: int
    refused: int
    up_to_date: int
    deferred: int = 0

    def line(self) -> str:
        left = (f", {self.deferred} due but deferred to the next run (--stop-after)"
                if self.deferred else "")
        return (f"{self.issued} issued or renewed, {self.failed} failed, {self.refused} sources "
                f"refused, {self.up_to_date} up to date{left}")


def pass_summary(report: PassReport) -> PassSummary:
    issued = sum(1 for o in report.outcomes
                 if o.ok and o.action.kind in (ActionKind.ISSUE, ActionKind.RENEW))
    deferred = len(report.deferred)
    failed = sum(1 for o in report.outcomes if not o.ok) - deferred
    refused = len(report.survey.discovery.problems)
    return PassSummary(issued, failed, refused,
                       len(report.outcomes) - issued - failed - deferred, deferred)


def pass_registry(report: PassReport, summary: PassSummary, finished: float) -> CollectorRegistry:
    """A registry with the pass's counts and every certificate's state after the pass."""
    metrics = Metrics(process=False)
    observed: dict[SecretRef, ObservedSecret | None] = dict(report.survey.observed)
    failures: dict[SecretRef, int] = {}
    for outcome in report.outcomes:
        ref = outcome.action.desired.secret
        if outcome.issued is not None:
            failures[ref] = 0
            held = outcome.kept or outcome.issued.info  # what the Secret holds now
            observed[ref] = ObservedSecret(ref, managed=True, resource_version="",
                                           certificate=held, key_matches=True)
        elif not outcome.ok and not outcome.deferred:
            failures[ref] = 1
    metrics.count_certificate_error(
        sum(1 for o in report.outcomes if isinstance(o.error, InternalError)))
    now = datetime.fromtimestamp(finished, UTC)
    metrics.count_ari_renewal_held(len(ari_held(report.survey, now)))
    metrics.publish_certificates(certificate_rows(
        report.survey.actions, observed, report.survey.discovery.problems, failures, now))
    counts = Gauge("certbotk8s_pass_certificates", "Certificates by what the last pass did",
                   ["result"], registry=metrics.registry)
    for result, value in (("issued", summary.issued), ("failed", summary.failed),
                          ("refused", summary.refused), ("up_to_date", summary.up_to_date),
                          ("deferred", summary.deferred)):
        counts.labels(result).set(value)
    Gauge("certbotk8s_pass_last_run_timestamp_seconds", "When the last pass finished",
          registry=metrics.registry).set(finished)
    return metrics.registry


def push_pass(url: str, report: PassReport, summary: PassSummary, finished: float) -> None:
    """Replace this job's group on the Pushgateway at `url` (raises OSError when unreachable)."""
    push_to_gateway(url, job=PUSH_JOB, registry=pass_registry(report, summary, finished),
                    timeout=10)
