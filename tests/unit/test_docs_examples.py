"""Docs against code, the other direction: every config example in the docs passes the real
validator, every CLI example parses and its command's --help runs, known stale claims are gone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from certbotk8s import cli
from certbotk8s.core.config.schema import config_schema, top_level_keys
from certbotk8s.core.config.settings import load_config

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
CONFIG_KEYS = top_level_keys()
CONFIG_SCHEMA = jsonschema.Draft7Validator(config_schema())
# A config fragment without issuers is checked with this one added.
MINIMAL_ISSUERS = {"issuers": {"letsencrypt": {
    "directory": "https://acme-staging-v02.api.letsencrypt.org/directory"}}}
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
_PLACEHOLDER = re.compile(r":\s*\.\.\.\s*(#|$)", re.M)
_CLI = re.compile(r"(?:^|\$ |-- )certbotk8s (?P<args>[^#\n]*)")

# Claims that were once in the docs and are false; a page that says them again fails.
STALE = {
    "work unchanged": "kube-lego/cert-manager clusters do not work unchanged (migrating.md)",
    "runs\n`plan`, `renew --once` and `status`": "the demo runs the controller",
    "in the job pod's memory": "the CronJob overlay uses --shared-tokens",
    "no profile is requested": "the issuer's defaultProfile applies",
    "Let's Encrypt mails expiry": "Let's Encrypt stopped expiry mail in 2025",
    "ops@example.com": "Let's Encrypt refuses example.com contacts",
    "`certbotk8s_certificate_ready`": "the metric is certbotk8s_certificate_ready_status",
    "WHY column says which check": "status prints the check's message, not its code",
}


def _blocks(lang: set[str]) -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for m in _FENCE.finditer(page.read_text()):
            if m.group(1) in lang:
                out.append((page.name, m.group(2)))
    return out


def _config_examples() -> list[tuple[str, dict[str, object]]]:
    found = []
    for page, body in _blocks({"yaml", "yml"}):
        if _PLACEHOLDER.search(body):
            continue  # a schema with `key: ...` placeholders, not an example
        data = yaml.safe_load(body)
        if isinstance(data, dict) and data and set(data) <= CONFIG_KEYS:
            found.append((page, data))
    return found


def _cli_examples() -> list[tuple[str, list[str]]]:
    found = []
    for page, body in _blocks({"sh", "console", "bash", "shell"}):
        for line in body.splitlines():
            m = _CLI.search(line.strip())
            if m is not None:
                found.append((page, shlex.split(m["args"])))
    return found


def test_there_are_examples_to_check() -> None:
    assert len(_config_examples()) >= 3
    assert len(_cli_examples()) >= 5


@pytest.mark.parametrize("page, data", _config_examples(),
                         ids=[p for p, _ in _config_examples()])
def test_config_example_passes_the_validator(page: str, data: dict[str, object]) -> None:
    document = data if "issuers" in data else {**MINIMAL_ISSUERS, **data}
    config = load_config(yaml.safe_dump(document))
    assert not config.warnings, (page, config.warnings)
    CONFIG_SCHEMA.validate(document)  # the chart's schema takes what the validator takes


@pytest.mark.parametrize("page, argv", _cli_examples(),
                         ids=[f"{p}:{' '.join(a)}" for p, a in _cli_examples()])
def test_cli_example_parses_and_its_help_runs(
    page: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cli._parser().parse_args(argv)  # exits 2 on an unknown flag or bad value
    command = next(a for a in argv if not a.startswith("-"))
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert f"usage: certbotk8s {command}" in capsys.readouterr().out


@pytest.mark.parametrize("phrase", sorted(STALE))
def test_stale_statement_is_gone(phrase: str) -> None:
    for page in [*PAGES, ROOT / "manifests" / "base" / "config.yaml"]:
        assert phrase not in page.read_text(), f"{page.name}: {STALE[phrase]}"
