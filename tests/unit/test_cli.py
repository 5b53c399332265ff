"""The CLI: bad config or flag values are clean errors, global flags go anywhere, completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbotk8s import cli


def test_bad_config_is_refused_with_the_path_of_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("issuers:\n  le:\n    directory: http://not-https.example/dir\n"
                      "    rateLimits: {ordersPer3Hours: -1}\n")
    code = cli.main(["--config", str(config), "--kubeconfig", str(tmp_path / "none"),
                     "renew", "--once"])
    assert code == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "issuers.le.directory: must be an https URL" in err
    assert "issuers.le.rateLimits.ordersPer3Hours" in err


def test_missing_config_file_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["--config", str(tmp_path / "absent.yaml"), "plan"])
    assert code == cli.EXIT_CONFIG
    assert "absent.yaml: cannot read" in capsys.readouterr().err


def test_unreachable_cluster_is_a_clean_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("issuers:\n  le:\n    directory: https://acme.example/dir\n")
    code = cli.main(["--config", str(config), "--kubeconfig", str(tmp_path / "missing"),
                     "status"])
    assert code == cli.EXIT_FAILED
    assert "cannot load Kubernetes client configuration" in capsys.readouterr().err


def test_global_flags_are_accepted_after_the_command(tmp_path: Path) -> None:
    parser = cli._parser()
    before = parser.parse_args(["--config", "a.yaml", "--log-level", "debug", "plan"])
    after = parser.parse_args(["plan", "--config", "a.yaml", "--log-level", "debug", "-n", "x"])
    for args in (before, after):
        assert (args.config, args.log_level, args.command) == ("a.yaml", "DEBUG", "plan")
    # A flag after the command overrides the one before it; an absent one keeps the default.
    both = parser.parse_args(["--config", "a.yaml", "status", "--config", "b.yaml"])
    assert both.config == "b.yaml" and both.log_level == "INFO"


@pytest.mark.parametrize("argv, message", [
    (["--log-level", "foo", "plan"], "invalid log level 'foo'"),
    (["plan", "--log-level", "foo"], "invalid log level 'foo'"),
    (["controller", "--metrics-port", "99999"], "port out of range 1-65535: 99999"),
    (["controller", "--workers", "0"], "must be greater than 0"),
    (["renew"], "renew needs --once"),
    (["renew", "--once", "ns/a"], "either --once or NAMESPACE/SECRET"),
    (["renew", "ns"], "expected NAMESPACE/SECRET, got 'ns'"),
    (["revoke", "ns/a", "--reason", "cACompromise"], "invalid choice: 'cACompromise'"),
])
def test_bad_flag_values_are_clear_errors_not_tracebacks(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("usage: certbotk8s")


def test_bad_log_level_in_the_environment_is_a_clean_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERTBOTK8S_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit):
        cli.main(["plan"])
    assert "invalid log level 'loud'" in capsys.readouterr().err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_names_commands_options_and_choices(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["completion", shell]) == cli.EXIT_OK
    script = capsys.readouterr().out
    assert "complete -F _certbotk8s certbotk8s" in script
    for word in ("renew", "revoke", "status", "--shared-tokens", "--metrics-port",
                 "keyCompromise", "--log-level"):
        assert word in script, word
    assert ("bashcompinit" in script) is (shell == "zsh")


def test_bash_completion_completes_in_a_real_shell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    cli.main(["completion", "bash"])
    script = tmp_path / "c.sh"
    script.write_text(capsys.readouterr().out + """
COMP_WORDS=(certbotk8s re); COMP_CWORD=1; _certbotk8s; echo "1:${COMPREPLY[*]}"
COMP_WORDS=(certbotk8s revoke ns/a --reason k); COMP_CWORD=4; _certbotk8s; echo "2:${COMPREPLY[*]}"
COMP_WORDS=(certbotk8s status --o); COMP_CWORD=2; _certbotk8s; echo "3:${COMPREPLY[*]}"
""")
    out = subprocess.run([bash, str(script)], capture_output=True, text=True, timeout=30,
                         check=True).stdout.splitlines()
    assert out[0] == "1:renew revoke"
    assert out[1] == "2:keyCompromise"
    assert out[2] == "3:--output"
