"""charts/certbotk8s/values.schema.json is generated (scripts/values_schema.py) and current, and
refuses unknown keys and wrong types in the chart's values and in its `config`."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("values_schema",
                                               ROOT / "scripts" / "values_schema.py")
assert _SPEC is not None and _SPEC.loader is not None
gen = importlib.util.module_from_spec(_SPEC)
sys.modules["values_schema"] = gen
_SPEC.loader.exec_module(gen)

DEFAULTS: dict[str, Any] = yaml.safe_load(gen.VALUES.read_text())
VALIDATOR = jsonschema.Draft7Validator(json.loads(gen.SCHEMA.read_text()))


def _with(**changes: Any) -> dict[str, Any]:
    """The defaults with keys set, nesting by `__` (`controller__replicas=3`)."""
    values = copy.deepcopy(DEFAULTS)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = values
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return values


def test_committed_schema_is_the_generated_one() -> None:
    assert gen.SCHEMA.read_text() == gen.render(gen.VALUES.read_text()), \
        "values.schema.json is stale: run python scripts/values_schema.py"


def test_defaults_and_the_documented_choices_pass() -> None:
    VALIDATOR.validate(DEFAULTS)
    VALIDATOR.validate(_with(config__tenants__allowAnyHost=True))
    VALIDATOR.validate(_with(
        config__tenants__hostPatterns={"team-a": ["*.a.example.com"]},
        serviceAccount={"create": False, "name": "dns-writer",
                        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
        extraVolumes=[{"name": "ca", "secret": {"secretName": "corp-ca"}}],
        extraVolumeMounts=[{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
        controller__resources={"limits": {"cpu": 1}}, **{"global": {"imageRegistry": "x"}}))


@pytest.mark.parametrize("values, where", [
    (_with(replica=3), "replica"),
    (_with(controller__replica=3), "replica"),
    (_with(serviceAccount__annotation={}), "annotation"),
    (_with(config__tenants__allowAnyHosts=True), "allowAnyHosts"),
    (_with(config__issuers__letsencrypt__emial="a@b.test"), "emial"),
    (_with(config__solver__http01__selfcheck=False), "selfcheck"),
], ids=["top", "controller", "serviceAccount", "config.tenants", "config.issuers",
        "config.solver"])
def test_unknown_keys_are_refused(values: dict[str, Any], where: str) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(values)]
    assert any(where in message for message in errors), errors


@pytest.mark.parametrize("values", [
    _with(controller__replicas="2"),
    _with(http01Port="8089"),
    _with(logJson="yes"),
    _with(image__tag=1.0),
    _with(extraVolumes={"name": "ca"}),
    _with(commonLabels={"team": 7}),
    _with(mode="sometimes"),
    _with(config__tenants__allowAnyHost="true"),
    _with(config__tenants__hostPatterns={"team-a": "*.a.example.com"}),
    _with(config__solver__dns01__propagationTimeout="5m"),
    _with(config__renewal__keyType="rsa-1024"),
], ids=["replicas", "http01Port", "logJson", "image.tag", "extraVolumes", "commonLabels",
        "mode", "allowAnyHost", "hostPatterns", "propagationTimeout", "keyType"])
def test_wrong_types_are_refused(values: dict[str, Any]) -> None:
    assert not VALIDATOR.is_valid(values)


def test_a_value_whose_default_shows_no_type_must_be_declared() -> None:
    with pytest.raises(SystemExit, match="newList: its default does not show its type"):
        gen.render(gen.VALUES.read_text() + "newList: []\n")
