"""Benchmark: seconds the DNS-01 propagation check waits after a TXT write, per mode.

Against the lab (lab/up): each run writes a fresh TXT value into the lab's BIND over RFC 2136
and times `DnsLookup.wait_until_visible` in three set-ups:

- authoritative: the zone's nameserver asked directly (the default mode);
- recursive: only the lab's forwarding resolver asked, nothing asked about the name before;
- recursive, primed: the resolver asked about the name once before the write (as a CNAME or
  SOA lookup through it does), so it answers from its negative cache until the zone's negative
  TTL (5 s in the lab; the SOA minimum in real zones) runs out.

Prints one JSON document (medians and maxima). Usage:
.venv/bin/python bench/propagation.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from certbotk8s.adapters.dns.propagation import split_hostport  # noqa: E402
from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider  # noqa: E402
from certbotk8s.core.ports import TxtRecord  # noqa: E402
from tests.lab.conftest import Lab, read_lab_env  # noqa: E402


def _once(lab: Lab, mode: str) -> float:
    zone = lab["DNS_ZONE"]
    record = TxtRecord(f"_acme-challenge.bench-{uuid.uuid4().hex[:10]}.{zone}", zone,
                       uuid.uuid4().hex)
    forwarder = lab["DNS_FORWARDER"]
    if mode == "recursive-primed":
        host, port = split_hostport(forwarder, 53)
        dns.query.udp(dns.message.make_query(record.fqdn, "TXT"), host, port=port, timeout=2)
    if mode == "authoritative":
        lookup = lab.lookup()
    else:
        lookup = lab.lookup(recursive_nameservers=(forwarder,))
    provider = Rfc2136Provider(lab.rfc2136())
    provider.present(record)
    try:
        start = time.monotonic()
        lookup.wait_until_visible([record], timeout=30)
        return time.monotonic() - start
    finally:
        provider.cleanup(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab = Lab(read_lab_env(ROOT / ".lab" / "env"))
    result: dict[str, object] = {"runs": args.runs}
    for mode in ("authoritative", "recursive", "recursive-primed"):
        seconds = [_once(lab, mode) for _ in range(args.runs)]
        result[mode] = {"median_s": round(statistics.median(seconds), 3),
                        "max_s": round(max(seconds), 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
