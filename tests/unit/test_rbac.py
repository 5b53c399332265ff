"""The RBAC of manifests/ grants exactly the Kubernetes API calls the code declares
(adapters/kube/api_calls.py), both ways; every request the adapters send is declared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from certbotk8s.adapters.kube import api_calls
from certbotk8s.adapters.kube.api_calls import UndeclaredApiCall, classify, require
from tests.rbac import Doc, Install, differences, split_docs

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SRC = ROOT / "src" / "certbotk8s"


def _load(path: Path) -> list[Doc]:
    return split_docs(yaml.safe_load_all(path.read_text()))


def test_base_rbac_grants_exactly_the_declared_calls() -> None:
    docs = _load(MANIFESTS / "base" / "rbac.yaml")
    assert differences(docs, Install("certbotk8s")) == ""


def test_namespaced_overlay_grants_exactly_the_declared_calls() -> None:
    overlay = MANIFESTS / "overlays" / "namespaced"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    deleted = {p["target"]["kind"] for p in kustomization["patches"]
               if "$patch: delete" in p["patch"]}
    assert deleted == {"ClusterRole", "ClusterRoleBinding"}
    docs = [d for d in _load(MANIFESTS / "base" / "rbac.yaml") if d["kind"] not in deleted]
    docs += _load(overlay / "roles.yaml")
    assert differences(docs, Install("certbotk8s", ("team-a", "team-b"))) == ""
