"""The controller's own record of each certificate it manages (pure: the values and their form).

A record holds what certbotk8s knows about one Secret: the hosts it holds (its claim), the
source it was written for, issuer, profile, key type, the certificate's dates, serial and ARI
CertID, the issuance history of 7 days (rate-limit budget), the failure state (backoff), the
chosen ARI renewal moment, when the claim began and when its source went away. The values use
the `certbotk8s.io/*` keys and formats of core.state.secret_meta, so the display copy on the Secret
(annotations for people and `kubectl`) is the same text; it is never read back.

Records live in the controller's namespace only (adapters/kube/records.py), where tenants
cannot write: nothing a tenant writes becomes one. Anything malformed in a stored record is
skipped when read (it costs that record's history, never an exception).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import secret_meta

Record = Mapping[str, str]

CLAIMED_SINCE = "certbotk8s.io/claimed-since"
"""When this Secret first held its hosts (the claim's seniority among namespaces)."""
RELEASED_AT = "certbotk8s.io/released-at"
"""When no source wanted this Secret any more; its claim lapses `claimGrace` later."""
ORDER_URL = "certbotk8s.io/order-url"
"""The ACME order in flight for this Secret (resumed by the next leader after a crash)."""
ORDER_HOSTS = "certbotk8s.io/order-hosts"
"""The hosts of that order, comma-separated (it is resumed only for the very same hosts)."""

SHARDS = 128  # 50,000 records of ~0.7 KB: ~0.4 MB per shard, well under a Secret's 1 MiB
MAX_KEYS = 40  # a record has about 20 keys; more is not ours
MAX_VALUE = 4096  # the longest value certbotk8s writes is the 7-day history (~1.3 KB)
SHARED_VALUE = 64  # values up to this long are interned when read (see `decode`)


def shard_of(ref: SecretRef, shards: int = SHARDS) -> int:
    """The shard that holds `ref`'s record (stable across processes and versions)."""
    digest = hashlib.sha256(f"{ref.namespace}/{ref.name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def entry_key(ref: SecretRef) -> str:
    """The data key of `ref` in its shard. Namespaces never contain "." and Secret data keys
    allow it, so the key splits back at the first dot."""
    return f"{ref.namespace}.{ref.name}"


def ref_of(key: str) -> SecretRef | None:
    namespace, dot, name = key.partition(".")
    return SecretRef(namespace, name) if dot and namespace and name else None


def encode(record: Record) -> bytes:
    return json.dumps(dict(sorted(record.items())), separators=(",", ":")).encode()


def decode(raw: bytes) -> dict[str, str] | None:
    """A stored record, or None when it is not one (only string keys and values kept)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or len(value) > MAX_KEYS:
        return None
    # Keys and short values (issuer, key type, times of one burst) repeat across thousands of
    # records: one shared string each (a leader holding 1,800 records: 4.5 MB -> 1.8 MB).
    return {sys.intern(k): (sys.intern(v) if len(v) <= SHARED_VALUE else v)
            for k, v in value.items()
            if isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_VALUE}


# -- claims -----------------------------------------------------------------------------------


def claimed_hosts(record: Record, now: datetime, grace: timedelta) -> tuple[str, ...]:
    """The hosts this record holds now: none once its source has been gone for `grace`."""
    released = secret_meta.parse_time(record.get(RELEASED_AT, ""))
    if released is not None and now - released >= grace:
        return ()
    return secret_meta.recorded_hosts(record)


def claim_since(record: Record) -> datetime | None:
    return (secret_meta.parse_time(record.get(CLAIMED_SINCE, ""))
            or secret_meta.parse_time(record.get(secret_meta.ISSUED_AT, "")))


Changes = dict[SecretRef, dict[str, str | None]]


def release_changes(records: Mapping[SecretRef, Record], wanted: Iterable[SecretRef],
                    now: datetime, in_scope: Iterable[str] = ()) -> Changes:
    """What to write so each record says whether a source still wants its Secret: RELEASED_AT
    set (to `now`) where none does, removed where one does again. `in_scope`: only records of
    these namespaces (a pass limited to some namespaces knows nothing of the others)."""
    wanted_refs = set(wanted)
    scope = set(in_scope)
    changes: Changes = {}
    for ref, record in records.items():
        if scope and ref.namespace not in scope:
            continue
        released = RELEASED_AT in record
        if ref in wanted_refs and released:
            changes[ref] = {RELEASED_AT: None}
        elif ref not in wanted_refs and not released and secret_meta.HOSTS in record:
            changes[ref] = {RELEASED_AT: secret_meta.format_time(now)}
    return changes


def expired(record: Record, now: datetime, grace: timedelta) -> bool:
    """Whether the record can go: released longer than `grace` and longer than the history
    window (its issuances no longer count against any limit)."""
    released = secret_meta.parse_time(record.get(RELEASED_AT, ""))
    return released is not None and now - released >= max(grace, secret_meta.HISTORY_WINDOW)


def claim_start(record: Record, hosts: tuple[str, ...], now: datetime) -> str:
    """The CLAIMED_SINCE to keep for a record that now holds `hosts`: its old one while it
    held any of them already, else `now`."""
    previous = record.get(CLAIMED_SINCE)
    if previous and set(secret_meta.recorded_hosts(record)) & set(hosts):
        return previous
    return secret_meta.format_time(now)
