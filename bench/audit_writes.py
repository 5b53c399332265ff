"""Every API write the controller made, per object and per change, from the lab's audit log.

`bench/controller.py` counts requests by verb and resource (the API server's metrics); this
says which object each write went to and what it changed, so a write that repeats another
can be found. Start the lab with `LAB_AUDIT=1 lab/up` (the API server then logs the
controller's requests to .lab/kube/audit.log, writes with their bodies), run the bench, and
give this script a burst's window (`started_at`, `ended_at` of a burst in the bench JSON):

    .venv/bin/python bench/audit_writes.py --since 2026-12-08T02:00:00+00:00 \
        --until 2026-12-08T02:00:09+00:00 --certificates 30 [--log .lab/kube/audit.log]

Prints one JSON document:

- `by_verb_resource_object`: writes per certificate by verb, resource and kind of object
  (names with a hash, number or tenant part folded: `certbotk8s-records-*`, `<tenant>`);
- `patches_per_object`: for each Secret patched more than once, how many times, and how
  many objects of that kind were patched how often;
- `record_changes`: for the record shards, the fields each patch of a certificate's record
  changed (its first write, the order URL set or cleared, the ARI moment, ...), counted.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from certbotk8s.core.state import records as rec  # noqa: E402

CONTROLLER_USER = "system:serviceaccount:certbotk8s:certbotk8s"
WRITES = ("create", "update", "patch", "delete", "deletecollection")
_FOLDS = (
    (re.compile(r"^certbotk8s-records-\d+$"), "certbotk8s-records-*"),
    (re.compile(r"^certbotk8s-http01-[0-9a-f]+$"), "certbotk8s-http01-*"),
    (re.compile(r"^certbotk8s-acme-account-.*$"), "certbotk8s-acme-account-*"),
    (re.compile(r"^certbotk8s-.*$"), None),  # the controller's own objects: kept as named
)


def events(path: Path, since: datetime | None, until: datetime | None
           ) -> Iterator[tuple[bool, dict[str, Any]]]:
    """The controller's completed requests, each with whether it is in [since, until) (the
    ones before are needed too: what a record held when the window opened)."""
    with path.open() as f:
        for line in f:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            if (event.get("user") or {}).get("username") != CONTROLLER_USER:
                continue
            at = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if until and at >= until:
                return
            yield (since is None or at >= since), event


def kind_of(ref: dict[str, Any]) -> str:
    """An object name with what varies per certificate folded away."""
    name = str(ref.get("name") or "")
    if not name:
        return "(collection)"
    for pattern, folded in _FOLDS:
        if pattern.match(name):
            return folded or name
    if ref.get("namespace") == "certbotk8s":
        return name
    return "<tenant>"


def resource_of(ref: dict[str, Any]) -> str:
    sub = ref.get("subresource")
    return f"{ref.get('resource')}/{sub}" if sub else str(ref.get("resource"))


def record_fields(value: object) -> dict[str, str] | None:
    if not isinstance(value, str):
        return None
    try:
        return rec.decode(base64.b64decode(value, validate=True))
    except ValueError:
        return None


def changed_fields(before: dict[str, str] | None, after: dict[str, str] | None) -> str:
    """What one record write changed, as a short label: `new`, `removed`, or the keys."""
    if after is None:
        return "removed"
    if before is None:
        return "new record"
    keys = sorted(k.removeprefix("certbotk8s.io/") for k in set(before) | set(after)
                  if before.get(k) != after.get(k))
    return "+".join(keys) or "(nothing)"


def analyse(stream: Iterable[tuple[bool, dict[str, Any]]], certificates: int) -> dict[str, Any]:
    writes: Counter[tuple[str, str, str]] = Counter()
    requests: Counter[tuple[str, str]] = Counter()
    per_object: Counter[tuple[str, str, str]] = Counter()
    record_changes: Counter[str] = Counter()
    records: dict[str, dict[str, str] | None] = {}
    for counted, event in stream:
        ref = event.get("objectRef") or {}
        verb, resource = str(event.get("verb")), resource_of(ref)
        code = int((event.get("responseStatus") or {}).get("code") or 0)
        if counted:
            requests[(verb, resource)] += 1
        if verb not in WRITES:
            continue
        if counted:
            failed = f" ({code})" if code >= 300 else ""  # a patch of a missing shard: 404
            writes[(verb, resource, kind_of(ref) + failed)] += 1
            if verb == "patch":
                per_object[(resource, str(ref.get("namespace")), str(ref.get("name")))] += 1
        body = event.get("requestObject") or {}
        if kind_of(ref) == "certbotk8s-records-*" and verb in ("patch", "create") \
                and code < 300:
            data = body.get("data") if isinstance(body, dict) else None
            for key, value in (data or {}).items():
                after = record_fields(value) if value is not None else None
                if counted:
                    record_changes[changed_fields(records.get(key), after)] += 1
                records[key] = after
    total_writes = sum(writes.values())
    repeats: dict[str, Counter[int]] = defaultdict(Counter)
    for (resource, _ns, name), n in per_object.items():
        repeats[f"{resource} {kind_of({'name': name, 'namespace': _ns})}"][n] += 1
    return {
        "certificates": certificates,
        "writes_per_certificate": round(total_writes / certificates, 2),
        "requests_per_certificate": round(sum(requests.values()) / certificates, 2),
        "by_verb_resource_object": {
            f"{verb} {resource} {kind}": round(n / certificates, 2)
            for (verb, resource, kind), n in sorted(writes.items())},
        "patches_per_object": {
            kind: {f"{times}x": objects for times, objects in sorted(counts.items())}
            for kind, counts in sorted(repeats.items())},
        "record_changes": dict(record_changes.most_common()),
        "reads_per_certificate": {
            f"{verb} {resource}": round(n / certificates, 2)
            for (verb, resource), n in sorted(requests.items()) if verb not in WRITES},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", default=str(ROOT / ".lab" / "kube" / "audit.log"))
    parser.add_argument("--since", type=datetime.fromisoformat)
    parser.add_argument("--until", type=datetime.fromisoformat)
    parser.add_argument("--certificates", type=int, default=1)
    args = parser.parse_args()
    stream = events(Path(args.log), args.since, args.until)
    print(json.dumps(analyse(stream, args.certificates), indent=2))


if __name__ == "__main__":
    main()
