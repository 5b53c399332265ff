"""Benchmark the certificate records (app/records.py over adapters/kube/records.py) at scale.

Against the lab's kube-apiserver (lab/up), in a namespace of its own:
- fill: N records (default 50,000) of realistic size (1-3 hosts, a week of issuance history,
  source, serial, ARI CertID, a chosen moment) written with one flush;
- objects: how many shard Secrets that makes, their total and largest size (a Secret holds at
  most 1 MiB);
- burst: B certificates issued within a few seconds (one record replaced each, as `store`
  does) with the controller's 1 s flush: API writes per certificate;
- load: a fresh process-side `Records.load()` of all N, its time, and the RSS of this process
  holding them plus the per-pass derived views (claims, the 7-day issuance history);
- per-pass cost: the time of `holdings()` and `issuance_records` over all N (each reconcile
  pass computes both).
Prints one JSON document. The namespace is deleted at the end (its Secrets go with it only
once a namespace controller runs; the lab has none, so the shards are deleted one by one).

Usage: .venv/bin/python bench/records.py [--records 50000] [--burst 300]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kubernetes import client as k8s  # noqa: E402

from certbotk8s.adapters.kube.records import ROLE, ROLE_LABEL, KubeRecordStore  # noqa: E402
from certbotk8s.adapters.kube.sources import load_api_client  # noqa: E402
from certbotk8s.app.records import Records  # noqa: E402
from certbotk8s.core.model import SecretRef  # noqa: E402
from certbotk8s.core.sources.ownership import holdings  # noqa: E402
from certbotk8s.core.state import records as rec  # noqa: E402
from certbotk8s.core.state import secret_meta  # noqa: E402


class CountingStore:
    """KubeRecordStore that counts the API writes it makes (one patch per shard touched)."""

    def __init__(self, store: KubeRecordStore) -> None:
        self.store, self.writes, self.saves = store, 0, 0

    def load(self) -> dict[SecretRef, dict[str, str]]:
        return self.store.load()

    def load_one(self, ref: SecretRef) -> dict[str, str] | None:
        return self.store.load_one(ref)

    def save(self, changes: Any) -> None:
        self.saves += 1
        self.writes += len({rec.shard_of(ref, self.store.shards) for ref in changes})
        self.store.save(changes)


def _record(i: int, now: datetime) -> dict[str, str]:
    hosts = ",".join(f"h{i}-{n}.team-{i % 300}.example.com" for n in range(1 + i % 3))
    history = ",".join(secret_meta.format_time(now - timedelta(days=d * 2, hours=i % 24))
                       for d in range(3))
    moment = " ".join((secret_meta.format_time(now + timedelta(days=30)),
                       "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345.AbCdEf0123456789",
                       secret_meta.format_time(now + timedelta(days=29)),
                       secret_meta.format_time(now + timedelta(days=31))))
    return {
        secret_meta.HOSTS: hosts, secret_meta.ISSUER: "letsencrypt",
        secret_meta.KEY_TYPE: "ecdsa-p256", secret_meta.PROFILE: "",
        secret_meta.NOT_BEFORE: secret_meta.format_time(now - timedelta(days=10)),
        secret_meta.NOT_AFTER: secret_meta.format_time(now + timedelta(days=80)),
        secret_meta.SERIAL: f"{i:040x}",
        secret_meta.ARI_CERT_ID: "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345.AbCdEf0123456789",
        secret_meta.SOURCE: f"Ingress/team-{i % 300}/web-{i}",
        secret_meta.ISSUED_AT: secret_meta.format_time(now - timedelta(days=10)),
        secret_meta.ISSUANCE_HISTORY: history,
        secret_meta.RENEWAL_MOMENT: moment,
        rec.CLAIMED_SINCE: secret_meta.format_time(now - timedelta(days=100)),
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    api = load_api_client(os.environ.get("KUBECONFIG"))
    core: Any = k8s.CoreV1Api(api)
    namespace = f"bench-records-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    now = datetime.now(UTC)
    refs = [SecretRef(f"team-{i % 300}", f"web-{i}-tls") for i in range(args.records)]
    result: dict[str, Any] = {"records": args.records}
    try:
        store = CountingStore(KubeRecordStore(api, namespace))
        filler = Records(store, save_every=3600)  # the fill: as good as one flush
        started = time.monotonic()
        for i, ref in enumerate(refs):
            filler.replace(ref, _record(i, now))
        filler.flush(force=True)
        result["fill"] = {"seconds": round(time.monotonic() - started, 2),
                          "api_writes": store.writes}

        shards = core.list_namespaced_secret(namespace, label_selector=f"{ROLE_LABEL}={ROLE}")
        sizes = [sum(len(v) for v in (s.data or {}).values()) for s in shards.items]
        result["objects"] = {"count": len(sizes), "total_mb": round(sum(sizes) / 2**20, 2),
                             "largest_kb": round(max(sizes) / 1024, 1),
                             "secret_limit_kb": 1024}

        # A burst: certificates issued back to back, each record replaced, flushed at 1 s.
        writer = Records(store, save_every=1.0)
        writer.load()
        store.writes = store.saves = 0
        started = time.monotonic()
        for i, ref in enumerate(refs[: args.burst]):
            writer.replace(ref, {**_record(i, now), secret_meta.ISSUED_AT:
                                 secret_meta.format_time(datetime.now(UTC))})
            time.sleep(0.01)  # ~100 certificates a second, the controller's burst rate
        writer.flush(force=True)
        seconds = time.monotonic() - started
        result["burst"] = {"certificates": args.burst, "seconds": round(seconds, 2),
                           "record_api_writes": store.writes,
                           "record_writes_per_certificate": round(store.writes / args.burst, 3)}

        rss_before = _rss_mb()
        del writer, filler
        reader = Records(KubeRecordStore(api, namespace))
        started = time.monotonic()
        reader.load()
        loaded = time.monotonic() - started
        snapshot = reader.snapshot()
        started = time.monotonic()
        held = holdings(snapshot, now, timedelta(hours=1))
        claims = time.monotonic() - started
        started = time.monotonic()
        issued = [r for record in snapshot.values()
                  for r in secret_meta.issuance_records(record, now)]
        history = time.monotonic() - started
        result["load"] = {"records": len(reader), "seconds": round(loaded, 2),
                          "rss_mb_before_load": round(rss_before, 1),
                          "rss_mb_after_load": round(_rss_mb(), 1),
                          "max_rss_mb": round(resource.getrusage(
                              resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        result["per_pass"] = {"claims_seconds": round(claims, 3), "claims": len(held),
                              "issuance_history_seconds": round(history, 3),
                              "issuances": len(issued)}
    finally:
        for shard in core.list_namespaced_secret(namespace).items:
            core.delete_namespaced_secret(shard.metadata.name, namespace)
        core.delete_namespace(namespace)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
