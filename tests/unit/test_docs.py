"""The docs and manifests say what the code does: annotations, metrics, flags, example config."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from certbotk8s import cli
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config import settings as config_module
from certbotk8s.core.config.settings import load_config
from certbotk8s.core.model import KeyType
from certbotk8s.core.sources import annotations as ann
from certbotk8s.core.sources.discovery import Reasons
from certbotk8s.core.sources.ownership import OwnershipReasons

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _text(name: str) -> str:
    return (DOCS / name).read_text()


def test_every_annotation_and_key_type_is_documented() -> None:
    text = _text("annotations.md")
    for key in [*ann.SOURCE_ANNOTATIONS, ann.TLS_ACME]:
        assert f"`{key}`" in text, key
    for key_type in KeyType:
        assert f"`{key_type.value}`" in text, key_type


def test_every_metric_is_documented() -> None:
    text = _text("operations.md")
    names = {m.name for m in Metrics().registry.collect() if not m.name.startswith("process_")}
    names.add("certbotk8s_rate_limit_holds_total")
    for name in names:
        # Counters are collected without their _total suffix.
        documented = f"`{name}`" in text or f"`{name}_total`" in text
        assert documented, name


def test_every_problem_reason_is_in_troubleshooting() -> None:
    text = _text("troubleshooting.md")
    reasons = [v for cls in (Reasons, OwnershipReasons)
               for k, v in vars(cls).items() if k.isupper()]
    for reason in reasons:
        assert f"`{reason}`" in text, reason


def test_every_cli_flag_is_documented() -> None:
    text = _text("cli.md")
    parser = cli._parser()
    flags = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert f"`{name}" in text, name
                flags |= {o for a in sub._actions for o in a.option_strings
                          if o.startswith("--")}
    flags.discard("--help")
    for flag in sorted(flags):
        assert f"`{flag}" in text or f"{flag}" in text, flag


def test_every_flag_choice_and_positional_of_a_command_is_documented() -> None:
    """`-o table|json|yaml`, `--reason keyCompromise`, `status NAMESPACE/SECRET`: each value a
    flag accepts and each positional argument appears on its command's line of cli.md."""
    text = _text("cli.md")
    (commands,) = [a for a in cli._parser()._actions
                   if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        lines = [line for line in text.splitlines() if line.startswith(f"| `{name}")]
        assert lines, name
        documented = "\n".join(lines).replace("\\|", "|")
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for choice in action.choices or ():
                assert f"{choice}" in documented, (name, action.dest, choice)
            if not action.option_strings and action.metavar:
                assert str(action.metavar) in documented, (name, action.metavar)


def test_every_config_key_is_documented() -> None:
    text = _text("configuration.md")
    source = Path(config_module.__file__).read_text()
    source += Path(config_module.__file__).with_name("dns_providers.py").read_text()
    # The keys the parser accepts are the camelCase strings in its frozensets.
    keys = set(re.findall(r'"([a-z][a-zA-Z0-9]+)"', source)) - {"rfc2136"}
    keys = {k for k in keys if any(c.isupper() for c in k) or k in {
        "issuers", "istio", "solver", "renewal", "directory", "email", "eab", "profiles",
        "hosts", "secret", "issuer", "challenge", "profile", "port", "http01", "dns01"}}
    missing = sorted(k for k in keys if f"`{k}`" not in text and f"{k}:" not in text)
    assert not missing, missing


def test_shipped_config_is_valid() -> None:
    manifests = (ROOT / "manifests" / "base" / "config.yaml").read_text()
    config = load_config(manifests)
    assert config.issuers["letsencrypt"].directory.startswith("https://acme-v02.")
    assert config.issuers["letsencrypt-staging"].directory.startswith("https://acme-staging-v02.")
    docstring = config_module.__doc__ or ""
    example = docstring.split("Example::", 1)[1]
    assert load_config(example.replace("\n    ", "\n")).default_issuer == "letsencrypt"


def test_mkdocs_nav_lists_existing_pages() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(items: list[object]) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out.extend(pages(value) if isinstance(value, list) else [str(value)])
        return out

    for page in pages(nav):
        assert (DOCS / page).is_file(), page
