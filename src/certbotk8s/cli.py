"""`certbotk8s` command line: renew --once, plan, status, controller."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from certbotk8s import __version__
from certbotk8s.adapters.http01 import Http01Responder
from certbotk8s.adapters.kube_client import load_api_client
from certbotk8s.adapters.kube_tokens import KubeTokenStore
from certbotk8s.app import status as status_view
from certbotk8s.app.logs import configure_logging
from certbotk8s.app.renewal_pass import run_pass, survey
from certbotk8s.app.runtime import build_runtime, read_config
from certbotk8s.core.config import Config, ConfigError
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.plan import ActionKind
from certbotk8s.core.text import printable

log = logging.getLogger("certbotk8s")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="certbotk8s", description=__doc__)
    p.add_argument("--version", action="version", version=f"certbotk8s {__version__}")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                   help="kubeconfig file (default $KUBECONFIG, else in-cluster)")
    p.add_argument("--config", default=os.environ.get("CERTBOTK8S_CONFIG"),
                   help="config file (default $CERTBOTK8S_CONFIG, else "
                        "/etc/certbotk8s/config.yaml)")
    p.add_argument("--log-level", default=os.environ.get("CERTBOTK8S_LOG_LEVEL", "INFO"))
    p.add_argument("--log-json", action="store_true",
                   default=os.environ.get("CERTBOTK8S_LOG_JSON") == "1",
                   help="structured JSON logs (one object per line)")
    sub = p.add_subparsers(dest="command", required=True)

    def scoped(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("-n", "--namespace", action="append", default=[],
                         help="only sources in this namespace (repeatable; default all)")
        return cmd

    renew = scoped("renew", "one pass: issue or renew what is due, then exit")
    renew.add_argument("--once", action="store_true", required=True,
                       help="run one pass and exit (the CronJob mode)")
    renew.add_argument("--shared-tokens", action="store_true",
                       help="keep HTTP-01 tokens in the controller namespace's token Secret, so "
                            "controller replicas behind the same solver Service answer them too")
    scoped("plan", "show what a pass would do, changing nothing")
    st = scoped("status", "table of managed certificates")
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ctl = sub.add_parser("controller", help="run the in-cluster controller (Deployment mode)")
    ctl.add_argument("--metrics-address", default="0.0.0.0",
                     help="address for /healthz, /readyz and /metrics")
    ctl.add_argument("--metrics-port", type=int, default=9090)
    ctl.add_argument("--workers", type=int, default=16, help="orders in parallel")
    ctl.add_argument("--identity", default=os.environ.get("POD_NAME"),
                     help="leader-election identity (default $POD_NAME, else hostname-pid)")
    ctl.add_argument("--lease-name", default="certbotk8s-leader")
    ctl.add_argument("--lease-duration", type=float, default=15.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    try:
        config = read_config(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(f"certbotk8s: invalid configuration: {line}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.command == "renew":
            return _renew(config, args)
        if args.command == "plan":
            return _plan(config, args)
        if args.command == "status":
            return _status(config, args)
        if args.command == "controller":
            from certbotk8s.app.controller_main import main as controller_main

            return controller_main(config, args)
    except CertbotK8sError as e:
        print(f"certbotk8s: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED


def _renew(config: Config, args: argparse.Namespace) -> int:
    api = load_api_client(args.kubeconfig)
    shared: KubeTokenStore | None = None
    if args.shared_tokens:
        shared = KubeTokenStore(api, config.controller_namespace)
        shared.start()
    runtime = build_runtime(config, api, tokens=shared)
    http01 = config.solver.http01
    try:
        responder = Http01Responder(runtime.tokens, http01.listen_address, http01.port)
    except OSError as e:
        print(f"certbotk8s: cannot serve HTTP-01 on {http01.listen_address}:{http01.port}: "
              f"{e.strerror}", file=sys.stderr)
        return EXIT_FAILED
    try:
        with responder:
            report = run_pass(runtime.deps, args.namespace,
                              progress=lambda line: print(printable(line), flush=True))
    finally:
        if shared is not None:
            shared.stop()
    done = sum(1 for o in report.outcomes
               if o.ok and o.action.kind in (ActionKind.ISSUE, ActionKind.RENEW))
    failed = sum(1 for o in report.outcomes if not o.ok)
    refused = len(report.survey.discovery.problems)
    print(f"certbotk8s: {done} issued or renewed, {failed} failed, {refused} sources refused, "
          f"{len(report.outcomes) - done - failed} up to date", flush=True)
    return EXIT_FAILED if report.failed else EXIT_OK


def _plan(config: Config, args: argparse.Namespace) -> int:
    runtime = build_runtime(config, load_api_client(args.kubeconfig))
    current = survey(runtime.deps, args.namespace)
    for problem in current.discovery.problems:
        print(printable(f"refuse   {problem.source}: {problem.reason}: {problem.message}"))
    for action in current.actions:
        d = action.desired
        when = ""
        if action.next_renewal is not None:
            when = f" (next renewal {action.next_renewal.strftime('%Y-%m-%d %H:%M UTC')})"
        note = current.ari_problems.get(d.secret)
        print(printable(f"{action.kind.value.lower():8} {d.secret} <- {d.source} "
                        f"[{', '.join(d.spec.hosts)}]: {action.reason.message}{when}"
                        + (f"; note: {note}" if note else "")))
    if current.missing_apis:
        print(f"note: the cluster does not serve {', '.join(current.missing_apis)}")
    return EXIT_OK


def _status(config: Config, args: argparse.Namespace) -> int:
    runtime = build_runtime(config, load_api_client(args.kubeconfig))
    rows = status_view.collect(runtime, args.namespace)
    if args.output == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(status_view.render_table(rows))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
