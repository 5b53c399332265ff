"""The CLI from a laptop and inside the pod: no traceback from any command (`--debug` shows it),
the config read from the controller's ConfigMap when no file is given, `--context`, and a
`renew` whose HTTP-01 port is taken (inside the controller's pod)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient

from certbotk8s import cli
from certbotk8s.adapters.http01.responder import MemoryTokenStore
from certbotk8s.adapters.kube.configmaps import ConfigMapText
from certbotk8s.app import runtime
from certbotk8s.app.commands import renew_now
from certbotk8s.core.config.settings import ConfigError

CONFIG_TEXT = "issuers:\n  le:\n    directory: https://acme.example/dir\n"


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: Any) -> Any:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "_config", broken)
    assert cli.main(["status"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.splitlines() == ["certbotk8s: unexpected error: RuntimeError: something nobody "
                                "expected (run with --debug for the traceback)"]
    assert cli.main(["status", "--debug"]) == cli.EXIT_FAILED
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.fixture
def no_local_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CERTBOTK8S_CONFIG", raising=False)
    monkeypatch.setattr(runtime, "DEFAULT_CONFIG_PATH", str(tmp_path / "absent.yaml"))


def test_without_a_config_file_the_configmap_is_read(
    monkeypatch: pytest.MonkeyPatch, no_local_config: None
) -> None:
    asked: list[tuple[str, str | None]] = []

    def read(api: Any, namespace: str, name: str | None) -> ConfigMapText | None:
        asked.append((namespace, name))
        return ConfigMapText(namespace, "certbotk8s-config-h4sh", CONFIG_TEXT)

    monkeypatch.setattr(runtime, "read_config_map", read)
    monkeypatch.setattr(cli, "_api_client", lambda args: object())
    args = cli._parser().parse_args(["status", "--controller-namespace", "ops"])
    config = cli._config(args)
    assert asked == [("ops", None)]
    assert config.controller_namespace == "ops"  # the ConfigMap's namespace, as in the pod
    named = cli._parser().parse_args(["--config-map", "mine", "plan"])
    cli._config(named)
    assert asked[-1] == ("certbotk8s", "mine")


def test_no_configmap_and_no_file_is_a_config_error_naming_both(
    monkeypatch: pytest.MonkeyPatch, no_local_config: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runtime, "read_config_map", lambda api, namespace, name: None)
    monkeypatch.setattr(cli, "_api_client", lambda args: object())
    assert cli.main(["plan"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "no config file (--config, $CERTBOTK8S_CONFIG) and no certbotk8s ConfigMap in " \
           "namespace certbotk8s" in err


def test_a_broken_configmap_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "read_config_map", lambda api, namespace, name: ConfigMapText(
        namespace, "cm", "issuers: {le: {directory: http://plain}}\n"))
    with pytest.raises(ConfigError) as raised:
        runtime.config_from_cluster(object(), "ops", None)  # type: ignore[arg-type]
    assert raised.value.errors[0].startswith("ConfigMap ops/cm: issuers.le.directory")


def test_an_unknown_context_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: here, context: {cluster: c, user: u}}]\ncurrent-context: here\n")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_TEXT)
    code = cli.main(["status", "--kubeconfig", str(kubeconfig), "--context", "elsewhere",
                     "--config", str(config)])
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "cannot load Kubernetes client configuration" in err and "(context elsewhere)" in err
    assert "Traceback" not in err


class _SharedTokens(MemoryTokenStore):
    def __init__(self, api: Any, namespace: str) -> None:
        super().__init__()

    def start(self) -> None: ...
    def stop(self) -> None: ...


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The HTTP-01 port held by someone else (the controller, in its own pod)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(renew_now, "KubeTokenStore", _SharedTokens)
        monkeypatch.setattr(renew_now, "build_runtime", lambda config, api, tokens=None:
                            SimpleNamespace(tokens=tokens or MemoryTokenStore()))
        yield SimpleNamespace(solver=SimpleNamespace(http01=SimpleNamespace(
            listen_address="127.0.0.1", port=port)), controller_namespace="certbotk8s")


def test_renew_inside_the_controller_pod_orders_with_the_controllers_responder(
    taken_port: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[object] = []
    run: Any = ran.append
    report = renew_now.serve_and_run(taken_port, cast(ApiClient, object()), True, run,
                                     controller_answers=True)
    assert len(ran) == 1 and report is None  # `run` ran (it returns what ran.append returns)
    assert "the controller's replicas answer the challenges" in capsys.readouterr().err


def test_renew_with_the_port_taken_and_no_controller_is_one_line(
    taken_port: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[object] = []
    run: Any = ran.append
    assert renew_now.serve_and_run(taken_port, cast(ApiClient, object()), False, run) is None
    assert not ran
    err = capsys.readouterr().err
    assert err.startswith("certbotk8s: cannot serve HTTP-01 on 127.0.0.1:") and err.count("\n") == 1
