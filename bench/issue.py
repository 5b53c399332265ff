"""Benchmark: seconds from new order to certificate, and ACME requests per certificate.

Runs against the lab's Pebble (lab/up; PEBBLE_VA_NOSLEEP=1) with an account registered
beforehand. Prints one JSON document. Usage: .venv/bin/python bench/issue.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from certbotk8s.adapters.acme.engine import AcmeEngine, OrderRequest  # noqa: E402
from certbotk8s.adapters.acme.network import RequestRecord  # noqa: E402
from certbotk8s.adapters.dns.lexicon import LexiconProvider  # noqa: E402
from certbotk8s.adapters.dns.solver import DnsSolver  # noqa: E402
from certbotk8s.adapters.http01.responder import (  # noqa: E402
    Http01Responder,
    Http01Solver,
    MemoryTokenStore,
    SelfCheck,
)
from certbotk8s.core.model import ChallengeType, KeyType  # noqa: E402
from certbotk8s.core.pki import keys  # noqa: E402
from certbotk8s.core.ports import ChallengeSolver  # noqa: E402
from tests.lab.conftest import Lab, read_lab_env  # noqa: E402


def measure(engine: AcmeEngine, seen: list[RequestRecord], lab: Lab, challenge: ChallengeType,
            solver: ChallengeSolver, runs: int, zone: str | None = None) -> dict[str, object]:
    seconds: list[float] = []
    order_requests: list[int] = []
    nonce_requests: list[int] = []
    for i in range(runs):
        seen.clear()
        host = lab.host(f"bench{i}")
        if zone is not None:  # the same fresh label in another lab zone
            host = f"{host.split('.')[0]}.{zone}"
        started = time.perf_counter()
        cert = engine.issue(
            OrderRequest(hosts=(host,), challenge=challenge, profile="default"),
            {challenge: solver},
        )
        seconds.append(time.perf_counter() - started)
        assert cert.info.sans == (host,)
        nonce = [r for r in seen if r.method == "HEAD"]
        nonce_requests.append(len(nonce))
        order_requests.append(len(seen) - len(nonce))
    return {
        "runs": runs,
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(min(seconds), 4),
        "max_s": round(max(seconds), 4),
        "acme_requests_per_cert_median": statistics.median(order_requests),
        "acme_requests_per_cert_max": max(order_requests),
        "nonce_requests_total": sum(nonce_requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab = Lab(read_lab_env(ROOT / ".lab" / "env"))
    records: list[RequestRecord] = []
    engine = AcmeEngine(lab["ACME_DIRECTORY"], keys.generate_key(KeyType.ECDSA_P256),
                        ca_bundle=lab["ACME_CA_BUNDLE"], observer=records.append)
    engine.ensure_account()  # registration is outside the measured span
    store = MemoryTokenStore()
    results: dict[str, object] = {"ca": "pebble (lab, PEBBLE_VA_NOSLEEP=1)"}
    with Http01Responder(store, "127.0.0.1", lab.http01_port):
        # HTTP-01 with the self-check on, as a user runs it.
        http01 = Http01Solver(store, SelfCheck(port=lab.http01_port, resolver=lab["DNS_SERVER"]))
        results["http01_one_host"] = measure(engine, records, lab, ChallengeType.HTTP01, http01,
                                             args.runs)
    dns01 = lab.dns01_solver()
    results["dns01_one_host"] = measure(engine, records, lab, ChallengeType.DNS01, dns01,
                                        args.runs)
    # DNS-01 through lexicon's powerdns provider, validated by the Pebble that resolves through
    # PowerDNS; same propagation check. Its own account, registered outside the span.
    pdns_engine = AcmeEngine(lab["ACME_DIRECTORY_PDNS"], keys.generate_key(KeyType.ECDSA_P256),
                             ca_bundle=lab["ACME_CA_BUNDLE"], observer=records.append)
    pdns_engine.ensure_account()
    pdns = DnsSolver(LexiconProvider("powerdns", {"pdns_server": lab["PDNS_API"]},
                                     {"auth_token": lab["PDNS_API_KEY"]}),
                     lab.lookup("PDNS_SERVER"), name="pdns")
    results["dns01_powerdns_lexicon_one_host"] = measure(
        pdns_engine, records, lab, ChallengeType.DNS01, pdns, args.runs, zone=lab["PDNS_ZONE"])
    rfc2136_median = results["dns01_one_host"]["median_s"]  # type: ignore[index]
    pdns_median = results["dns01_powerdns_lexicon_one_host"]["median_s"]  # type: ignore[index]
    results["dns01_powerdns_vs_rfc2136"] = round(pdns_median / rfc2136_median, 2)
    results["targets"] = {"http01_median_s": 0.1, "acme_requests_per_cert": 8,
                          "dns01_powerdns_vs_rfc2136_max": 2.0}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
