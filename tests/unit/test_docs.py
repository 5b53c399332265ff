"""The docs and manifests say what the code does: annotations, metrics, flags, example config."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from certbotk8s import cli
from certbotk8s.adapters.kube.api_calls import LEADER_LEASE
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config import settings as config_module
from certbotk8s.core.config.schema import all_keys as config_keys
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
    keys = config_keys()  # every key of every section, from the models
    assert {"allowAnyHost", "hostPatterns", "tsig", "selfCheckResolver"} <= keys
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


# --- metric names and labels, Lease names: what the pages say against the code ----------------

PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
# What `renew --once --pushgateway` pushes besides the controller's metrics (app/pass_metrics.py).
PASS_LABELS = {"certbotk8s_pass_certificates": {"result"},
               "certbotk8s_pass_last_run_timestamp_seconds": set()}
_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
# Names that are gone, mentioned in upgrading.md as such.
REMOVED = {"certbotk8s_certificate_ready", "<release>-certbotk8s-leader"}


def _removed(page: Path, name: str) -> bool:
    return page.name == "upgrading.md" and name in REMOVED


def _metric_labels() -> dict[str, set[str]]:
    """Every exported metric with its label names (counters also under their _total name)."""
    out = {name: set(labels) for name, labels in PASS_LABELS.items()}
    for metric in vars(Metrics(process=False)).values():
        name = getattr(metric, "_name", None)
        if isinstance(name, str) and name.startswith("certbotk8s_"):
            labels = set(metric._labelnames)
            out[name] = labels
            if getattr(metric, "_type", "") == "counter":
                out[f"{name}_total"] = labels
    return out


def _known(name: str, metrics: dict[str, set[str]]) -> str | None:
    for candidate in (name, *(name.removesuffix(s) for s in _SUFFIXES if name.endswith(s))):
        if candidate in metrics:
            return candidate
    return None


def test_metric_names_in_the_docs_exist() -> None:
    metrics = _metric_labels()
    for page in PAGES:
        for name in re.findall(r"\b(certbotk8s_[a-z0-9_]*[a-z0-9])\b", page.read_text()):
            if name == "certbotk8s_certificate" or _removed(page, name):  # a prefix
                continue
            assert _known(name, metrics), (page.name, name)


def test_metric_labels_in_the_docs_are_the_exported_ones() -> None:
    """`metric{label,...}` and `metric{label="v"}` in any page, and the labels column of the
    metrics table in operations.md, name exactly the labels the code exports."""
    metrics = _metric_labels()
    for page in PAGES:
        for name, inside in re.findall(r"(certbotk8s_[a-z0-9_]+)\{([^}]*)\}", page.read_text()):
            if _removed(page, name):
                continue
            base = _known(name, metrics)
            assert base, (page.name, name)
            used = {part.split("=")[0].strip() for part in inside.split(",") if part.strip()}
            assert used <= metrics[base] | {"le"}, (page.name, name, used - metrics[base])
    rows = re.findall(r"^\| `(certbotk8s_[a-z0-9_]+)` \| [a-z]+ \|([^|]*)\|",
                      _text("operations.md"), re.M)
    assert len(rows) > 20
    for name, column in rows:
        documented = {label.strip() for label in column.split(",") if label.strip()}
        assert documented == metrics[_known(name, metrics) or name], (name, documented)
    for page in PAGES:  # PromQL groupings of the certificate series
        for grouping in re.findall(r"by \(([^)]*)\) \(?certbotk8s_certificate_",
                                   page.read_text()):
            used = {label.strip() for label in grouping.split(",")}
            assert used <= metrics["certbotk8s_certificate_ready_status"], (page.name, used)


def test_lease_names_everywhere_are_the_one_the_code_uses() -> None:
    """Pages, chart, manifests and alerts name the Lease the CLI and controller default to,
    and nothing passes another name."""
    texts = {p: p.read_text() for p in PAGES}
    for folder in (ROOT / "charts", ROOT / "manifests"):
        texts |= {p: p.read_text() for p in folder.rglob("*") if p.suffix in (".yaml", ".tpl",
                                                                              ".txt")}
    mentioned = set()
    for path, text in texts.items():
        for name in re.findall(r"([A-Za-z0-9_{}<>.$%\"-]*-leader)\b", text):
            assert name.strip('"') == LEADER_LEASE or _removed(path, name), (path.name, name)
            mentioned.add(path.parent.name if path.suffix != ".md" else path.name)
        assert "--lease-name" not in text or path.suffix == ".md", path
    assert {"operations.md", "cli.md", "troubleshooting.md"} <= mentioned
    parser = cli._parser()
    for command in (["renew", "ns/s"], ["revoke", "ns/s"], ["controller"]):
        assert parser.parse_args(command).lease_name == LEADER_LEASE


def _named_tests(text: str) -> list[tuple[str, str | None]]:
    """(module, test or None) for each `tests/...py[::name]` and `::name` in `text`; a bare
    `::name` belongs to the module named last before it."""
    found: list[tuple[str, str | None]] = []
    module = ""
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", text):
        if path:
            module = path
        if path or name:
            found.append((module, name or None))
    return found


def test_every_test_the_security_tables_name_exists() -> None:
    """docs/security.md's attack tables name the test of each defence: each must exist."""
    named = _named_tests(_text("security.md"))
    assert len(named) > 40
    def exists(module: str, name: str | None) -> bool:
        path = ROOT / module
        if not module or not path.is_file():
            return False
        return name is None or re.search(rf"^def {name}\(", path.read_text(), re.M) is not None

    missing = [f"{module}::{name}" for module, name in named if not exists(module, name)]
    assert not missing, missing
