"""A year of a certificate fleet in a fake clock, driven through the real plan, records,
budget, lifecycle and after-order decisions of both modes (tests/renewal_sim.py), against a
model CA that enforces Let's Encrypt's production limits on its own books.

Model: 40 % 90-day, 40 % 45-day, 20 % 6-day certificates; 60 % of them on 20 shared registered
domains; host changes, weekly controller restarts, two 6-hour CA outages, a mass revocation
(ARI says "renew now"), order durations, a worker pool (controller) or `renew --once` twice a
day with the Job's deadline (CronJob).

Prints one JSON object per mode: expired certificates, early renewals without a reason,
peak counted orders per 3 h, max per-domain counted certificates per 7 days against the limit,
CA refusals, budget holds the CA would have accepted, host changes never served / served within
a day, certificates that ran out while their host change waited for the budget, renewals of the
names held meanwhile (`interim_renewals`), mass-revocation replacement time, CronJob runs that
ended with due work left. Exit status
1 when any certificate expired, the CA refused an order or a hold was one the CA would accept.

Usage: .venv/bin/python bench/renewal_year.py [--certificates 10000] [--days 365]
       [--mode controller|cronjob|both] [--revoked 3000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certbotk8s.app.oneshot.run import RENEW_ONCE_WORKERS
from tests.renewal_sim import CONTROLLER, CRONJOB, SimConfig, as_json, simulate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--mode", choices=(CONTROLLER, CRONJOB, "both"), default="both")
    parser.add_argument("--revoked", type=int, default=None,
                        help="certificates revoked at once (default: 30 %% of the fleet)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cron-workers", type=int, default=RENEW_ONCE_WORKERS,
                        help="renew --once --workers")
    parser.add_argument("--cron-every-hours", type=float, default=12.0,
                        help="the CronJob's schedule interval")
    args = parser.parse_args()
    revoked = args.revoked if args.revoked is not None else args.certificates * 3 // 10
    scale = args.days / 365
    ok = True
    for mode in ((CONTROLLER, CRONJOB) if args.mode == "both" else (args.mode,)):
        started = time.monotonic()
        result = simulate(SimConfig(
            certificates=args.certificates, days=args.days, mode=mode, seed=args.seed,
            revoked=revoked, revocation_day=150 * scale,
            outages=((75 * scale, 6.0), (260 * scale, 6.0)),
            host_changes_per_day=5.0 * args.certificates / 10_000,
            cron_workers=args.cron_workers, cron_every=timedelta(hours=args.cron_every_hours)))
        result.seconds = round(time.monotonic() - started, 1)
        print(json.dumps(as_json(result)), flush=True)
        ok &= result.expired == 0 and result.ca_refusals == 0 and \
            result.holds_ca_would_accept == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
