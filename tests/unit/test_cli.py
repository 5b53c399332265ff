"""The CLI refuses a bad configuration file at start, naming the bad field, before any I/O."""

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
