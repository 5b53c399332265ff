"""`certbotk8s` command line: renew, revoke, plan, status, controller, completion."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta

from kubernetes.client import ApiClient

from certbotk8s import __version__
from certbotk8s.adapters.kube.api_calls import LEADER_LEASE
from certbotk8s.adapters.kube.client import check_storage, load_api_client
from certbotk8s.app.commands import completion, detail, force, output, plan_view, renew_now
from certbotk8s.app.commands import status as status_view
from certbotk8s.app.logs import configure_logging
from certbotk8s.app.oneshot.pass_metrics import pass_summary, push_pass
from certbotk8s.app.oneshot.run import RENEW_ONCE_WORKERS, run_pass
from certbotk8s.app.orders import survey
from certbotk8s.app.runtime import (
    DEFAULT_CONTROLLER_NAMESPACE,
    build_runtime,
    config_from_cluster,
    config_in_cluster,
    read_config,
)
from certbotk8s.core.config.settings import Config, ConfigError
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.sources.text import printable
from certbotk8s.core.state import secret_meta

log = logging.getLogger("certbotk8s")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid log level {text!r} (choose from {', '.join(LOG_LEVELS)})")
    return level


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {value}")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _target(text: str) -> SecretRef:
    try:
        return force.parse_target(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _global_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every command accepts, before or after the command name.

    The top-level parser holds the defaults; the subcommands' copies default to SUPPRESS, so a
    flag given after the command overrides and an absent one leaves the default alone.
    """
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    p.add_argument("--kubeconfig", default=d(os.environ.get("KUBECONFIG")),
                   help="kubeconfig file (default $KUBECONFIG, else in-cluster, else "
                        "~/.kube/config)")
    p.add_argument("--context", default=d(None),
                   help="kubeconfig context (default: the kubeconfig's current context)")
    p.add_argument("--config", default=d(os.environ.get("CERTBOTK8S_CONFIG")),
                   help="config file (default $CERTBOTK8S_CONFIG, else "
                        "/etc/certbotk8s/config.yaml when it exists, else the controller's "
                        "ConfigMap read from the cluster)")
    p.add_argument("--controller-namespace", metavar="NAMESPACE",
                   default=d(os.environ.get("CERTBOTK8S_NAMESPACE",
                                            DEFAULT_CONTROLLER_NAMESPACE)),
                   help="where the controller's ConfigMap is read when no config file is "
                        f"given (default $CERTBOTK8S_NAMESPACE, else "
                        f"{DEFAULT_CONTROLLER_NAMESPACE})")
    p.add_argument("--config-map", metavar="NAME", default=d(None),
                   help="read the config from this ConfigMap (default, when no config file "
                        "is given: the newest one labelled app.kubernetes.io/name=certbotk8s "
                        "with a config.yaml key)")
    p.add_argument("--debug", action="store_true", default=d(False),
                   help="print the traceback of an unexpected error")
    p.add_argument("--log-level", type=_log_level, metavar="LEVEL",
                   default=d(os.environ.get("CERTBOTK8S_LOG_LEVEL", "INFO")),
                   help=f"one of {', '.join(LOG_LEVELS)} (default $CERTBOTK8S_LOG_LEVEL, "
                        "else INFO)")
    p.add_argument("--log-json", action="store_true",
                   default=d(os.environ.get("CERTBOTK8S_LOG_JSON") == "1"),
                   help="structured JSON logs (one object per line)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="certbotk8s", description=__doc__)
    p.add_argument("--version", action="version", version=f"certbotk8s {__version__}")
    _global_options(p, defaults=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, scoped: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        _global_options(cmd, defaults=False)
        if scoped:
            cmd.add_argument("-n", "--namespace", action="append", default=[],
                             help="only sources in this namespace (repeatable; default all)")
        return cmd

    renew = command("renew", "renew --once: one pass, issue or renew what is due, then exit; "
                             "renew NAMESPACE/SECRET: renew that certificate now")
    renew.add_argument("targets", nargs="*", type=_target, metavar="NAMESPACE/SECRET",
                       help="force a renewal of these Secrets now (through the running "
                            "controller when one holds the Lease, else directly)")
    renew.add_argument("--once", action="store_true",
                       help="run one pass and exit (the CronJob mode)")
    renew.add_argument("--shared-tokens", action="store_true",
                       help="keep HTTP-01 tokens in the controller namespace's token Secret, so "
                            "controller replicas behind the same solver Service answer them too")
    renew.add_argument("--pushgateway", metavar="URL",
                       help="push the pass's metrics to this Prometheus Pushgateway")
    renew.add_argument("--workers", type=_positive(int), default=RENEW_ONCE_WORKERS,
                       help="--once: orders in parallel, the most urgent first (default "
                            f"{RENEW_ONCE_WORKERS})")
    renew.add_argument("--stop-after", type=_positive(float), default=3000.0, metavar="SECONDS",
                       help="--once: start no new order after this long (running ones finish); "
                            "keep it below the Job's activeDeadlineSeconds (default 3000)")
    renew.add_argument("--timeout", type=_positive(float), metavar="SECONDS",
                       help="NAMESPACE/SECRET: how long to wait for the controller (default: "
                            "solver.dns01.propagationTimeout + solver.orderTimeout + 60, the "
                            "longest order the config allows; 480 with their defaults)")
    renew.add_argument("--lease-name", default=LEADER_LEASE,
                       help=f"the controller's Lease (default {LEADER_LEASE})")
    revoke = command("revoke", "revoke a certificate at its CA, then issue a new one with a new "
                               "key", scoped=False)
    revoke.add_argument("targets", nargs=1, type=_target, metavar="NAMESPACE/SECRET")
    revoke.add_argument("--reason", default="unspecified",
                        choices=[r.name for r in force.RevocationReason],
                        help="RFC 5280 reason; keyCompromise is signed with the certificate's "
                             "own key (default unspecified)")
    revoke.add_argument("--no-renew", action="store_true",
                        help="only revoke; leave the revoked certificate in place")
    revoke.add_argument("--shared-tokens", action="store_true", help=argparse.SUPPRESS)
    revoke.add_argument("--timeout", type=_positive(float), metavar="SECONDS",
                        help="how long to wait for the controller's new certificate (default "
                             "as renew NAMESPACE/SECRET)")
    revoke.add_argument("--lease-name", default=LEADER_LEASE,
                        help=f"the controller's Lease (default {LEADER_LEASE})")
    plan_cmd = command("plan", "show what a pass would do, changing nothing")
    plan_cmd.add_argument("-o", "--output", choices=("table", *output.FORMATS), default="table",
                          help="lines (default), or json/yaml for machines")
    st = command("status", "table of managed certificates; status NAMESPACE/SECRET: one in "
                           "detail")
    st.add_argument("target", nargs="?", type=_target, metavar="NAMESPACE/SECRET",
                    help="show this certificate in detail: wanted, held, renewal moment and "
                         "why, last failure, next attempt, recent Events")
    st.add_argument("-o", "--output", choices=("table", *output.FORMATS), default="table",
                    help="table (default), or json/yaml with RFC 3339 times, numbers and "
                         "reason codes")
    ctl = command("controller", "run the in-cluster controller (Deployment mode)", scoped=False)
    ctl.add_argument("--metrics-address", default="0.0.0.0",
                     help="address for /healthz, /readyz and /metrics")
    ctl.add_argument("--metrics-port", type=_port, default=9090)
    ctl.add_argument("--workers", type=_positive(int), default=16, help="orders in parallel")
    ctl.add_argument("--identity", default=os.environ.get("POD_NAME"),
                     help="leader-election identity (default $POD_NAME, else hostname-pid)")
    ctl.add_argument("--lease-name", default=LEADER_LEASE,
                     help=f"the Lease the replicas elect a leader with (default {LEADER_LEASE})")
    ctl.add_argument("--lease-duration", type=_positive(float), default=15.0)
    ctl.add_argument("-n", "--namespace", action="append", default=[],
                     help="watch and write only in this namespace (repeatable; default all). "
                          "Works with Role-only RBAC: manifests/overlays/namespaced")
    comp = command("completion", "print a shell completion script", scoped=False)
    comp.add_argument("shell", choices=("bash", "zsh"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Every command: an unexpected exception is one line and exit 1, never a traceback
    (`--debug` prints it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _main(parser, args)
    except KeyboardInterrupt:
        print("certbotk8s: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        print(printable(f"certbotk8s: unexpected error: {type(e).__name__}: {e}")[:500]
              + ("" if args.debug else " (run with --debug for the traceback)"),
              file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_FAILED


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "completion":
        print(completion.script(parser, args.shell))
        return EXIT_OK
    if args.command == "renew" and not args.once and not args.targets:
        parser.error("renew needs --once (one pass over everything) or NAMESPACE/SECRET")
    if args.command == "renew" and args.once and args.targets:
        parser.error("renew: give either --once or NAMESPACE/SECRET, not both")
    configure_logging(args.log_level, args.log_json)
    try:
        config = _config(args)
    except ConfigError as e:
        for line in e.errors:
            print(f"certbotk8s: invalid configuration: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except CertbotK8sError as e:
        print(f"certbotk8s: {e}", file=sys.stderr)
        return EXIT_FAILED
    for line in config.warnings:
        log.warning("configuration: %s", line)
    try:
        if args.command == "renew" and args.targets:
            return _renew_targets(config, args, args.targets)
        if args.command == "renew":
            return _renew(config, args)
        if args.command == "revoke":
            return _revoke(config, args)
        if args.command == "plan":
            return _plan(config, args)
        if args.command == "status":
            return _status(config, args)
        if args.command == "controller":
            from certbotk8s.app.controller.main import main as controller_main

            return controller_main(config, args)
    except CertbotK8sError as e:
        print(f"certbotk8s: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED


def _config(args: argparse.Namespace) -> Config:
    """The config file; with none (a laptop), the controller's ConfigMap from the cluster."""
    if not args.config_map and not config_in_cluster(args.config):
        return read_config(args.config)
    config, found = config_from_cluster(_api_client(args), args.controller_namespace,
                                        args.config_map)
    log.info("configuration from ConfigMap %s/%s", found.namespace, found.name)
    return config


def _api_client(args: argparse.Namespace) -> ApiClient:
    """The API client of a one-shot command (one per run); refused at once (one line, exit 1)
    when the API server cannot reach etcd, instead of every request waiting out its timeout."""
    api: ApiClient | None = getattr(args, "api_client", None)
    if api is None:
        api = load_api_client(args.kubeconfig, args.context)
        check_storage(api)
        args.api_client = api
    return api


def _renew(config: Config, args: argparse.Namespace) -> int:
    api = _api_client(args)
    report = renew_now.serve_and_run(config, api, args.shared_tokens, lambda runtime: run_pass(
        runtime.deps, args.namespace, progress=renew_now.progress, workers=args.workers,
        stop_after=timedelta(seconds=args.stop_after)), namespaces=args.namespace)
    if report is None:
        return EXIT_FAILED
    summary = pass_summary(report)
    print(f"certbotk8s: {summary.line()}", flush=True)
    if args.pushgateway:
        try:
            push_pass(args.pushgateway, report, summary, time.time())
        except OSError as e:
            print(f"certbotk8s: pushing to {args.pushgateway} failed: {e}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_FAILED if report.failed else EXIT_OK


def _renew_targets(config: Config, args: argparse.Namespace, targets: list[SecretRef]) -> int:
    done = renew_now.renew_targets(config, _api_client(args), targets, lease_name=args.lease_name,
                                   timeout=args.timeout, shared_tokens=args.shared_tokens)
    return EXIT_OK if done else EXIT_FAILED


def _revoke(config: Config, args: argparse.Namespace) -> int:
    (ref,) = args.targets
    api = _api_client(args)
    runtime = build_runtime(config, api)
    stored = force.managed_secret(runtime.deps.secrets, ref)
    issuer = stored.annotations.get(secret_meta.ISSUER) or config.default_issuer
    if issuer not in config.issuers:
        print(f"certbotk8s: Secret {ref} was issued by {issuer!r}, which is not configured",
              file=sys.stderr)
        return EXIT_FAILED
    reason = force.RevocationReason[args.reason]
    done = force.revoke(runtime.deps.issuers.engine(issuer), stored, reason)
    print(f"{ref}: certificate {done.serial} revoked ({reason.name}, signed with the "
          f"{done.signed_by})", flush=True)
    if args.no_renew:
        return EXIT_OK
    renew_args = argparse.Namespace(**{**vars(args), "targets": [ref]})
    return _renew_targets(config, renew_args, [ref])


def _plan(config: Config, args: argparse.Namespace) -> int:
    runtime = build_runtime(config, _api_client(args))
    current = survey(runtime.deps, args.namespace)
    if args.output == "table":
        for line in plan_view.lines(current):
            print(line)
    else:
        print(output.render(plan_view.machine(current), args.output))
    return EXIT_OK


def _status(config: Config, args: argparse.Namespace) -> int:
    runtime = build_runtime(config, _api_client(args))
    if args.target is not None:
        found = detail.collect(runtime, args.target)
        if found is None:
            print(f"certbotk8s: no source wants Secret {args.target} and certbotk8s holds no "
                  "record of it", file=sys.stderr)
            return EXIT_FAILED
        print(detail.render_text(found) if args.output == "table"
              else output.render(found, args.output))
        return EXIT_OK
    rows = status_view.collect(runtime, args.namespace)
    if args.output == "table":
        print(status_view.render_table(rows))
    else:
        print(output.render([r.machine() for r in rows], args.output))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
