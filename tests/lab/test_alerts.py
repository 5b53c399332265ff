"""The alerts in Prometheus's own rule engine: `promtool check rules` on every shipped rule file
and `promtool test rules` (tests/alerts/alerts_test.yaml: each alert firing and not firing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.lab.conftest import ROOT, Lab

pytestmark = pytest.mark.lab

SOURCE = ROOT / "charts" / "certbotk8s" / "files" / "alerts.yaml"
KUSTOMIZE = [ROOT / "manifests" / "optional" / "prometheusrule.yaml",
             ROOT / "manifests" / "optional" / "cronjob" / "prometheusrule.yaml"]
RULE_TESTS = ROOT / "tests" / "alerts" / "alerts_test.yaml"


def _promtool(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    path = lab.env.get("PROMTOOL")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("PROMTOOL missing from .lab/env or not executable: run lab/up")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=ROOT)


def test_every_rule_file_passes_promtool_check(lab: Lab, tmp_path: Path) -> None:
    files = [str(SOURCE)]
    for manifest in KUSTOMIZE:  # a PrometheusRule's spec is a rules file
        spec = yaml.safe_load(manifest.read_text())["spec"]
        path = tmp_path / f"{manifest.parent.name}-{manifest.name}"
        path.write_text(yaml.safe_dump(spec))
        files.append(str(path))
    result = _promtool(lab, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_each_alert_fires_and_stays_quiet_in_promtool(lab: Lab) -> None:
    result = _promtool(lab, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout
