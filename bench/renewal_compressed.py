"""Renewals in compressed time against the real lab (tests/lab/compressed.py): the controller
runs >= 10 minutes with 30 sources in 3 namespaces (DNS-01 and HTTP-01) on Pebble's 4-minute
`fast` profile, one ARI window moved through Pebble's management API, one injected failure and
a controller restart half-way, every managed Secret watched. Prints JSON; exit 1 (problems on
stderr) when a promise broke.

Usage: LAB_PORT_OFFSET=... .venv/bin/python bench/renewal_compressed.py [--minutes 10]
       [--sources 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certbotk8s.adapters.kube.sources import load_api_client
from tests.lab.compressed import Plan, run
from tests.lab.conftest import RBAC_MANIFEST, apply_manifest, read_lab_env

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sources", type=int, default=30)
    parser.add_argument("--namespaces", type=int, default=3)
    parser.add_argument("--metrics-port", type=int, default=19890)
    parser.add_argument("--log", default="/tmp/bench-renewal-compressed.log",
                        help="where the controller's log is copied")
    args = parser.parse_args()
    env = read_lab_env(ROOT / ".lab" / "env")
    api = load_api_client(env["KUBECONFIG"])
    # The controller runs as its ServiceAccount: on a lab no test has used yet, its RBAC is
    # not there until applied (the tests' fixture does it for them).
    apply_manifest(api, RBAC_MANIFEST)
    plan = Plan(sources=args.sources, namespaces=args.namespaces, duration=args.minutes * 60,
                must_inject=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(env, api, plan, Path(tmp), args.metrics_port,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
        figures, problems = result.verdict()
        shutil.copyfile(result.log, args.log)
    print(json.dumps(figures, indent=2))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
