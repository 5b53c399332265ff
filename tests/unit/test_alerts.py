"""The alert rules: one source (charts/certbotk8s/files/alerts.yaml) that the kustomize rule
files repeat rule for rule, metrics and labels the code exports, and promtool tests
(tests/alerts/alerts_test.yaml, run in the lab) that make each alert fire and stay quiet."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from certbotk8s.app.metrics import CERT_LABELS, Metrics

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "charts" / "certbotk8s" / "files" / "alerts.yaml"
OPTIONAL = ROOT / "manifests" / "optional"
RULE_TESTS = ROOT / "tests" / "alerts" / "alerts_test.yaml"
# What `renew --once --pushgateway` adds to the controller's metrics (app/pass_metrics.py).
PASS_METRICS = {"certbotk8s_pass_certificates", "certbotk8s_pass_last_run_timestamp_seconds"}


def _groups() -> dict[str, list[dict[str, Any]]]:
    return {g["name"]: g["rules"] for g in yaml.safe_load(SOURCE.read_text())["groups"]}


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for rules in _groups().values() for r in rules}


def test_kustomize_rule_files_are_the_source_groups_rule_for_rule() -> None:
    groups = _groups()
    for path, names in ((OPTIONAL / "prometheusrule.yaml", ["certbotk8s", "certbotk8s-controller"]),
                        (OPTIONAL / "cronjob" / "prometheusrule.yaml",
                         ["certbotk8s", "certbotk8s-cronjob"])):
        shipped = yaml.safe_load(path.read_text())["spec"]["groups"]
        assert [g["name"] for g in shipped] == names, path
        for group in shipped:
            assert group["rules"] == groups[group["name"]], (path, group["name"])


def test_modes_get_their_own_alerts() -> None:
    groups = _groups()
    controller = {r["alert"] for r in groups["certbotk8s-controller"]}
    cronjob = {r["alert"] for r in groups["certbotk8s-cronjob"]}
    assert controller == {"CertbotK8sNoLeader"}
    assert all("certbotk8s_pass_last_run_timestamp_seconds" in r["expr"]
               for r in groups["certbotk8s-cronjob"]) and cronjob
    assert not any("certbotk8s_leader" in r["expr"] or "certbotk8s_pass_" in r["expr"]
                   for r in groups["certbotk8s"])


def test_expiry_alerts_do_not_depend_on_renewal_or_failures() -> None:
    for name in ("CertbotK8sCertificateExpiresSoon", "CertbotK8sCertificateRenewalOverdue"):
        expr = _alerts()[name]["expr"]
        assert "expiration_timestamp_seconds" in expr
        assert "renewal_timestamp" not in expr and "failed_attempts" not in expr
        assert "ready_status" not in expr


def test_alerts_use_exported_metrics_and_labels() -> None:
    families = {m.name: m for m in Metrics().registry.collect()}
    labels = {name: set(CERT_LABELS) | {"condition"} for name in families
              if name.startswith("certbotk8s_certificate_")}
    labels["certbotk8s_rate_limit_holds"] = {"limit"}
    for alert, rule in _alerts().items():
        for metric in re.findall(r"certbotk8s_[a-z_]+", rule["expr"]):
            assert metric in families or metric in PASS_METRICS, (alert, metric)
        for grouping in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            used = {label.strip() for label in grouping.split(",")}
            metrics = set(re.findall(r"certbotk8s_[a-z_]+", rule["expr"]))
            known = set().union(*(labels.get(m, set()) for m in metrics))
            assert used <= known, (alert, used - known)


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test["alert_rule_test"]]
    assert yaml.safe_load(RULE_TESTS.read_text())["rule_files"] == [
        "../../charts/certbotk8s/files/alerts.yaml"]
    for alert in _alerts():
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no case where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no case where it stays quiet"


def test_dashboard_queries_use_exported_metrics_and_certificate_labels() -> None:
    families = {m.name for m in Metrics().registry.collect()}
    panels = json.loads((OPTIONAL / "grafana-dashboard.json").read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        for metric in re.findall(r"certbotk8s_[a-z_]+", expr):
            assert re.sub(r"_(bucket|total)$", "", metric) in families or metric in families
        if "certbotk8s_certificate_" in expr:
            for grouping in re.findall(r"by \(([^)]*)\)", expr):
                used = {label.strip() for label in grouping.split(",")}
                assert used <= set(CERT_LABELS) | {"condition"}, (expr, used)
