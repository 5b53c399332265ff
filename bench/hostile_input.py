"""Benchmark: the hostile-input property test at a larger scale, plus discovery under load.

Runs `tests/unit/test_hostile_input.py`'s property (arbitrary objects through discovery,
ownership, plan and the status table; no exception may escape) with many more examples than
CI, then times one discovery pass over a cluster with thousands of tenant sources, some
hostile (10,000 hosts in one source, 200 KB annotations), and the CPU of repeated passes over
90 Ingresses of 1,000 distinct names each (issue 20, finding 4), with and without the memo the
controller keeps between passes. Prints one JSON document.
Usage: .venv/bin/python bench/hostile_input.py [--examples N] [--sources N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _property(examples: int) -> dict[str, object]:
    os.environ["CERTBOTK8S_HOSTILE_EXAMPLES"] = str(examples)
    from tests.unit import test_hostile_input as prop

    started = time.perf_counter()
    failure = None
    try:
        prop.test_no_tenant_object_raises_out_of_discovery_plan_or_status()
    except Exception as e:  # the falsifying example, shrunk by hypothesis
        failure = repr(e)[:2000]
    return {"examples": examples, "seconds": round(time.perf_counter() - started, 1),
            "passed": failure is None, "failure": failure}


def _cluster(sources: int) -> dict[str, object]:
    from certbotk8s.core.sources.discovery import trim_source
    from certbotk8s.core.sources.ownership import discover_owned
    from tests.unit.factories import ingress, make_config, tls_entry

    config = make_config(tenants={"hostPatterns": {
        f"team-{i}": [f"*.t{i}.example.com"] for i in range(100)}})
    objs = [ingress(f"web-{i}", f"team-{i % 100}",
                    tls=[tls_entry(f"s-{i}", f"w{i}.t{i % 100}.example.com")])
            for i in range(sources)]
    objs.append(ingress("wide", "team-0", tls=[tls_entry("wide", *(
        f"h{i}.t0.example.com" for i in range(10_000)))]))
    blob = ingress("blob", "team-1", annotations={"certbotk8s.io/enabled": "true",
                                                  "certbotk8s.io/renew-before": "x" * 200_000,
                                                  "other.io/blob": "y" * 200_000},
                   tls=[tls_entry("blob", "b.t1.example.com")])
    objs.append(blob)
    started = time.perf_counter()
    found = discover_owned(objs, [], [], [], config, [])
    took = time.perf_counter() - started
    kept = [trim_source(o) for o in objs]
    return {
        "sources": len(objs), "discovery_seconds": round(took, 3),
        "desired": len(found.desired), "problems": len(found.problems),
        "trimmed_bytes_of_hostile_blob": len(repr(trim_source(blob))),
        "raw_bytes_of_hostile_blob": len(repr(blob)),
        "trimmed_discovery_equal": discover_owned(kept, [], [], [], config, []) == found,
    }


def _flood(passes: int = 3) -> dict[str, object]:
    from certbotk8s.core.sources.discovery import trim_source
    from certbotk8s.core.sources.host_memo import HostMemo
    from certbotk8s.core.sources.ownership import discover_owned
    from tests.unit.factories import ingress, make_config, tls_entry

    config = make_config(tenants={"allowAnyHost": True})
    objs = [trim_source(ingress(f"h-{i}", "evil", tls=[tls_entry(f"s-{i}", *(
        f"h{j}.x{i}.evil.example.com" for j in range(1000)))])) for i in range(90)]

    def cpu(memo: HostMemo | None) -> list[float]:
        took = []
        for _ in range(passes):
            started = time.process_time()
            discover_owned(objs, [], [], [], config, [], memo=memo)
            took.append(round(time.process_time() - started, 3))
        return took

    return {"sources": len(objs), "names_per_source": 1000,
            "cpu_seconds_per_pass_without_memo": cpu(None),
            "cpu_seconds_per_pass_with_memo": cpu(HostMemo())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=30_000)
    parser.add_argument("--sources", type=int, default=5_000)
    args = parser.parse_args()
    print(json.dumps({"property": _property(args.examples),
                      "cluster": _cluster(args.sources), "flood": _flood()}, indent=2))


if __name__ == "__main__":
    main()
