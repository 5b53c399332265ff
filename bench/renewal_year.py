"""A year of renewals for 10,000 certificates in a fake clock, with Let's Encrypt's production
limits enforced by a model CA: the pure renewal decision, backoff and budget (no servers).

Prints JSON: orders per certificate, earliest/latest renewal as a fraction of the lifetime,
deciles, how renewals fall in the ARI windows' quarters (spread), expired and limit breaches
(both must be 0; the exit status is 1 otherwise).

Usage: .venv/bin/python bench/renewal_year.py [--certificates 10000] [--days 365] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.renewal_sim import SimConfig, as_json, simulate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    result = simulate(SimConfig(certificates=args.certificates, days=args.days, seed=args.seed))
    out = as_json(result)
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=2))
    return 0 if result.expired == 0 and result.limit_breaches == 0 and \
        result.never_issued == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
