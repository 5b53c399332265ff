"""The label and annotations that mark a Secret as certbotk8s's and record what it holds.

Times are RFC 3339 UTC (`2025-01-31T12:00:00Z`); hosts are comma-separated A-labels; the
source is `Kind/namespace/name`. An empty profile means "the CA's default"; an absent one was
lost (repaired from the source's spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from certbotk8s.core.budget.ratelimit import IssuanceRecord
from certbotk8s.core.model import CertificateInfo, DesiredCertificate, KeyType, RenewalWindow
from certbotk8s.core.renewal.backoff import FailureState
from certbotk8s.core.renewal.moment import ChosenMoment

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "certbotk8s"

HOSTS = "certbotk8s.io/hosts"
ISSUER = "certbotk8s.io/issuer"
PROFILE = "certbotk8s.io/profile"
KEY_TYPE = "certbotk8s.io/key-type"
NOT_BEFORE = "certbotk8s.io/not-before"
NOT_AFTER = "certbotk8s.io/not-after"
SERIAL = "certbotk8s.io/serial"
ARI_CERT_ID = "certbotk8s.io/ari-cert-id"
SOURCE = "certbotk8s.io/source"
ISSUED_AT = "certbotk8s.io/issued-at"
RENEW_REQUESTED_AT = "certbotk8s.io/renew-requested-at"
"""Set by `certbotk8s renew NAMESPACE/SECRET` and `revoke`: renew now (policy.renewal_requested)."""


@dataclass(frozen=True)
class SecretMetadata:
    labels: dict[str, str] = field(hash=False)
    annotations: dict[str, str] = field(hash=False)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC, whole seconds. Naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


TIME_TEXT_MAX = 64
"""Longer time values are not parsed at all (RFC 3339 with fractions and an offset is ~35)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Parsed times lie in [EARLIEST, LATEST): far enough from datetime's limits (years 1 and 9999)
that adding or subtracting any duration the code uses (backoff, 7 days of history, a
certificate's lifetime, ten years of renew-before) cannot overflow."""


def parse_time(text: str) -> datetime | None:
    """The inverse of `format_time`: an aware UTC datetime in [EARLIEST, LATEST), or None for
    anything else (unparsable, too long, overflowing on conversion to UTC, out of range).
    Annotations are tenant-writable: every value this returns is safe to compute with."""
    if not isinstance(text, str) or len(text) > TIME_TEXT_MAX:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)  # 9999-12-31T23:59:59-23:59 overflows here
    except (ValueError, OverflowError):
        return None
    return value if EARLIEST <= value < LATEST else None


def is_managed(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def build_secret_metadata(
    desired: DesiredCertificate, info: CertificateInfo, issued_at: datetime
) -> SecretMetadata:
    """Label and annotations for a Secret that now holds `info`, issued for `desired`."""
    annotations = {
        HOSTS: ",".join(desired.spec.hosts),
        ISSUER: desired.spec.issuer,
        KEY_TYPE: (info.key_type or desired.spec.key_type).value,
        NOT_BEFORE: format_time(info.not_before),
        NOT_AFTER: format_time(info.not_after),
        SERIAL: info.serial,
        ARI_CERT_ID: info.ari_cert_id,
        SOURCE: str(desired.source),
        ISSUED_AT: format_time(issued_at),
        PROFILE: desired.spec.profile or "",
    }
    return SecretMetadata(labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE}, annotations=annotations)


REPAIRABLE = (HOSTS, ISSUER, KEY_TYPE, NOT_BEFORE, NOT_AFTER, SERIAL, ARI_CERT_ID, SOURCE, PROFILE)


def metadata_repairs(desired: DesiredCertificate, info: CertificateInfo,
                     annotations: Mapping[str, str]) -> dict[str, str]:
    """The certbotk8s annotations that are missing or wrong for a Secret holding `info` for
    `desired` (what the certificate says, and the source's spec), with their right values."""
    right = build_secret_metadata(desired, info, info.not_before).annotations
    return {key: right[key] for key in REPAIRABLE if annotations.get(key) != right[key]}


def recorded_hosts(annotations: Mapping[str, str]) -> tuple[str, ...]:
    text = annotations.get(HOSTS, "")
    return tuple(sorted({h.strip() for h in text.split(",") if h.strip()}))


def recorded_key_type(annotations: Mapping[str, str]) -> KeyType | None:
    try:
        return KeyType(annotations.get(KEY_TYPE, ""))
    except ValueError:
        return None


# --- issuance history (rate-limit budget) -------------------------------------------------

ISSUANCE_HISTORY = "certbotk8s.io/issued-7d"
"""This Secret's issuances in the last 7 days, oldest first, comma-separated: each an RFC 3339
time, followed by `/replaces` when its order named the certificate it replaced (ARI
`replaces`): the CA counts such a renewal against no limit, and neither does the budget.
Histories written before the flag existed have plain times only (see `issuance_records`)."""
REPLACES_FLAG = "/replaces"
LAST_ORDER_REPLACED = "certbotk8s.io/last-order-replaced"
"""`"true"` when the order of the latest issuance sent ARI's `replaces` (a rate-limit-exempt
renewal); absent or anything else otherwise. Read only for histories without flags."""

HISTORY_WINDOW = timedelta(days=7)
HISTORY_MAX_ENTRIES = 60


@dataclass(frozen=True)
class HistoryEntry:
    """One issuance of the history: when, and whether its order sent `replaces`."""

    at: datetime
    replaced: bool = False


def _parse_entry(part: str) -> HistoryEntry | None:
    text = part.strip()
    replaced = text.endswith(REPLACES_FLAG)
    at = parse_time(text.removesuffix(REPLACES_FLAG))
    return HistoryEntry(at, replaced) if at is not None else None


def _format_entry(entry: HistoryEntry) -> str:
    return format_time(entry.at) + (REPLACES_FLAG if entry.replaced else "")


def parse_history(text: str | None) -> list[HistoryEntry]:
    """Every parsable entry of a history value, oldest first (unflagged before flagged at one
    time). Equal times stay: two issuances within one second (the history has whole seconds)
    are two issuances."""
    entries = [e for part in (text or "").split(",") if (e := _parse_entry(part)) is not None]
    return sorted(entries, key=lambda e: (e.at, e.replaced))


def history_entries(text: str | None, now: datetime) -> list[HistoryEntry]:
    """The parsable entries of a history value inside the 7-day window before `now`."""
    cutoff = now - HISTORY_WINDOW
    return [e for e in parse_history(text) if e.at > cutoff]


def append_history(existing: str | None, at: datetime, now: datetime,
                   replaced: bool = False) -> str:
    """The history value with an issuance at `at` added (flagged when its order sent
    `replaces`): entries older than 7 days before `now` dropped, then only the newest 60
    kept. Unparsable entries are dropped; times are whole-second UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    added = _format_entry(HistoryEntry(at, replaced))
    text = f"{existing},{added}" if existing else added
    entries = history_entries(text, now)[-HISTORY_MAX_ENTRIES:]
    return ",".join(_format_entry(e) for e in entries)


WHOLE_SECOND = timedelta(seconds=1)


def issuance_records(annotations: Mapping[str, str], now: datetime) -> list[IssuanceRecord]:
    """This Secret's issuances of the last 7 days, oldest first, all for its current HOSTS;
    `renewal_with_ari` (exempt from the CA's new-certificate limits) for flagged entries.

    A history without any flag is of the old format: only its latest entry can be exempt,
    from LAST_ORDER_REPLACED. Without a history, the ISSUED_AT time stands in (Secrets
    written before the history existed). No hosts recorded: no records.
    """
    hosts = recorded_hosts(annotations)
    if not hosts:
        return []
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    entries = history_entries(annotations.get(ISSUANCE_HISTORY), now)
    if not entries:
        entries = history_entries(annotations.get(ISSUED_AT), now)
    if not entries:
        return []
    if not any(e.replaced for e in entries) and \
            annotations.get(LAST_ORDER_REPLACED, "").strip().lower() == "true":
        entries[-1] = HistoryEntry(entries[-1].at, True)
    # A whole-second time stands for that whole second: the CA may have issued in any part of
    # it, so it is counted until the second ends (else an order woken when the window frees
    # would meet the CA still counting the certificate, and be refused).
    return [IssuanceRecord(hosts=hosts, at=e.at + WHOLE_SECOND, renewal_with_ari=e.replaced)
            for e in entries]


# --- the chosen renewal moment (ARI) ------------------------------------------------------

RENEWAL_MOMENT = "certbotk8s.io/renewal-moment"
"""`<moment> <ARI CertID> <window start> <window end>`: the point picked in the CA's window for
this certificate, so a restart or another replica renews at the same moment."""


def format_moment(moment: ChosenMoment) -> str:
    w = moment.window
    return " ".join((format_time(moment.at), moment.cert_id, format_time(w.start),
                     format_time(w.end)))


def parse_moment(annotations: Mapping[str, str]) -> ChosenMoment | None:
    """The persisted moment, or None when absent or malformed (a malformed one is re-picked)."""
    parts = annotations.get(RENEWAL_MOMENT, "").split()
    if len(parts) != 4:
        return None
    at, start, end = (parse_time(parts[i]) for i in (0, 2, 3))
    if at is None or start is None or end is None:
        return None
    return ChosenMoment(at, parts[1], RenewalWindow(start, end, parts[1]))


# --- failure state (backoff) --------------------------------------------------------------

FAILURES = "certbotk8s.io/failures"
"""Consecutive failed orders for this Secret (absent or 0 after a success)."""
NEXT_ATTEMPT = "certbotk8s.io/next-attempt"
"""No order for this Secret before this time (backoff), RFC 3339."""
LAST_ERROR = "certbotk8s.io/last-error"
LAST_ERROR_AT = "certbotk8s.io/last-error-at"
LAST_ERROR_MAX = 1000
FAILED_SPEC = "certbotk8s.io/failed-spec"
"""The fingerprint of the certificate the failures were for (core.renewal.backoff)."""
FAILURE_KEYS = (FAILURES, NEXT_ATTEMPT, LAST_ERROR, LAST_ERROR_AT, FAILED_SPEC)


def parse_failures(annotations: Mapping[str, str]) -> FailureState:
    """The failure state recorded on a Secret; anything unreadable counts as none."""
    try:
        failures = max(0, int(annotations.get(FAILURES, "0") or "0"))
    except ValueError:
        failures = 0
    next_attempt = parse_time(annotations.get(NEXT_ATTEMPT, "")) if failures else None
    spec = annotations.get(FAILED_SPEC, "")
    return FailureState(failures, next_attempt, annotations.get(LAST_ERROR, ""),
                        spec if len(spec) <= 64 else "",
                        parse_time(annotations.get(LAST_ERROR_AT, "")) if failures else None)


def failure_annotations(state: FailureState, now: datetime) -> dict[str, str]:
    """Annotations recording `state` (all of them, so a success can clear them by value)."""
    return {
        FAILURES: str(state.failures),
        NEXT_ATTEMPT: format_time(state.next_attempt) if state.next_attempt else "",
        LAST_ERROR: state.last_error[:LAST_ERROR_MAX],
        LAST_ERROR_AT: format_time(now),
        FAILED_SPEC: state.spec,
    }
