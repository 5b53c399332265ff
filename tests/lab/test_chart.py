"""charts/certbotk8s: helm lint, renders with default and other values, agrees with the kustomize
manifests, and installs server-side into the lab's API server."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.api_calls import LEADER_LEASE
from certbotk8s.cli import _parser
from certbotk8s.core.config.settings import load_config
from tests.lab.conftest import ROOT, Lab

pytestmark = pytest.mark.lab

CHART = ROOT / "charts" / "certbotk8s"
MANIFESTS = ROOT / "manifests"
Doc = dict[str, Any]

# A host policy: without one the chart refuses to render (test_no_host_policy_is_refused).
POLICY: Doc = {"config": {"tenants": {"allowAnyHost": True}}}

OTHER_VALUES: Doc = {
    "mode": "both",
    "image": {"repository": "registry.example/certbotk8s", "digest": "sha256:" + "ab" * 32},
    "controller": {"replicas": 3, "podDisruptionBudget": {"minAvailable": 2},
                   "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
    "cronjob": {"schedule": "7 3 * * *", "pushgateway": "http://pushgateway.monitoring:9091"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role", "operator": "In", "values": ["infra"]}]}]}}},
    "priorityClassName": "system-cluster-critical",
    "commonLabels": {"team": "platform"},
    "commonAnnotations": {"owner": "platform@corp.test"},
    "podAnnotations": {"sidecar.istio.io/inject": "false"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "prometheusRule": {"enabled": True}},
    "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "egressPorts": [443, 6443],
        "http01From": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "envoy-gateway-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}}},
            {"ipBlock": {"cidr": "10.0.0.0/24"}}]},
    "istioEgress": {"enabled": True},
    "config": {
        "dnsProviders": {"bind": {"type": "rfc2136", "server": "192.0.2.53:53",
                                  "tsig": {"keyName": "certbotk8s.", "algorithm": "hmac-sha256",
                                           "secretRef": {"name": "tsig", "key": "secret"}}}},
        "istio": {"gatewayNamespace": "istio-ingress", "allowedSourceNamespaces": ["shop"]},
        "tenants": {"hostPatterns": {"shop": ["*.shop.example.com"]}},
    },
}


def _tool(lab: Lab, key: str) -> str:
    path = lab.env.get(key)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{key} missing from .lab/env or not executable: run lab/up")
    return path


def _call(lab: Lab, tool: str, *args: str,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": lab["KUBECONFIG"],
           "HELM_CACHE_HOME": str(ROOT / ".lab" / "helm" / "cache"),
           "HELM_CONFIG_HOME": str(ROOT / ".lab" / "helm" / "config"),
           "HELM_DATA_HOME": str(ROOT / ".lab" / "helm" / "data")}
    return subprocess.run([_tool(lab, tool), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=180, check=False)


def _run(lab: Lab, tool: str, *args: str, stdin: str | None = None) -> str:
    result = _call(lab, tool, *args, stdin=stdin)
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _merged(base: Doc, extra: Doc) -> Doc:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _values_file(tmp_path: Path, values: Doc) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _refusal(lab: Lab, tmp_path: Path, values: Doc) -> str:
    """helm template's error output for values it must refuse."""
    result = _call(lab, "HELM", "template", "x", str(CHART), "-f", _values_file(tmp_path, values))
    assert result.returncode != 0, result.stdout
    return result.stderr


def _docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def _template(lab: Lab, tmp_path: Path, values: Doc | None = None, *,
              release: str = "certbotk8s", namespace: str = "certbotk8s") -> list[Doc]:
    """helm template with `values` over POLICY (a values' own host policy wins)."""
    merged = _merged(POLICY, values or {})
    if "hostPatterns" in (values or {}).get("config", {}).get("tenants", {}):
        merged["config"]["tenants"].pop("allowAnyHost")
    args = ["template", release, str(CHART), "--namespace", namespace,
            "--values", _values_file(tmp_path, merged)]
    return _docs(_run(lab, "HELM", *args))


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _pod(doc: Doc) -> Doc:
    if doc["kind"] == "CronJob":
        spec: Doc = doc["spec"]["jobTemplate"]["spec"]["template"]
    else:
        spec = doc["spec"]["template"]
    return spec


def test_helm_lint_passes(lab: Lab, tmp_path: Path) -> None:
    out = _run(lab, "HELM", "lint", "--strict", str(CHART), "-f", _values_file(tmp_path, POLICY))
    assert "0 chart(s) failed" in out
    assert "0 chart(s) failed" in _run(lab, "HELM", "lint", "--strict", str(CHART),
                                       "--values", _values_file(tmp_path, OTHER_VALUES))


def test_no_host_policy_is_refused(lab: Lab, tmp_path: Path) -> None:
    """A default install would issue nothing (every source HostNotAllowed): it fails instead,
    in one line naming both choices."""
    result = _call(lab, "HELM", "template", "x", str(CHART))
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if "no host policy" in line]
    assert "config.tenants.hostPatterns" in line and "config.tenants.allowAnyHost=true" in line
    both = {"config": {"tenants": {"allowAnyHost": True, "hostPatterns": {"a": ["a.test"]}}}}
    assert "set hostPatterns or allowAnyHost=true, not both" in _refusal(lab, tmp_path, both)
    for choice in (POLICY, {"config": {"tenants": {"hostPatterns": {"a": ["*.a.test"]}}}}):
        result = _call(lab, "HELM", "template", "x", str(CHART), "-f",
                       _values_file(tmp_path, choice))
        assert result.returncode == 0, result.stderr


def test_notes_say_what_next(lab: Lab, tmp_path: Path) -> None:
    patterns = {"config": {"tenants": {"hostPatterns": {"team-a": ["*.a.example.com"]}}}}
    out = _run(lab, "HELM", "install", "edge", str(CHART), "--dry-run=client",
               "--namespace", "tls", "-f", _values_file(tmp_path, patterns))
    notes = out.split("NOTES:", 1)[1]
    assert "team-a: *.a.example.com" in notes
    assert "certbotk8s.io/enabled" in notes
    assert "kubectl -n tls exec deploy/edge-certbotk8s -- certbotk8s status" in notes
    assert "HostNotAllowed" in notes and "describe" in notes
    assert "networkPolicy.http01From" in notes  # another proxy must be added to reach HTTP-01


def test_schema_refuses_unknown_keys_and_wrong_types(lab: Lab, tmp_path: Path) -> None:
    for values, where in (({"controller": {"replica": 3}}, "replica"),
                          ({"config": {"tenants": {"allowAnyHosts": True}}}, "allowAnyHosts"),
                          ({"controller": {"replicas": "two"}}, "replicas"),
                          ({"config": {"solver": {"http01": {"selfCheck": "no"}}}}, "selfCheck"),
                          ({"mode": "sometimes"}, "mode")):
        error = _refusal(lab, tmp_path, _merged(POLICY, values))
        assert "values don't meet the specifications of the schema" in error, error
        assert where in error, error


def test_default_render(lab: Lab, tmp_path: Path) -> None:
    docs = _template(lab, tmp_path, POLICY, release="edge", namespace="tls-system")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
                            "Role", "RoleBinding", "Service", "Service", "Deployment",
                            "PodDisruptionBudget", "NetworkPolicy"])
    assert all(d["metadata"].get("namespace") in (None, "tls-system") for d in docs)
    config = load_config(_one(docs, "ConfigMap")["data"]["config.yaml"])
    # controllerNamespace follows the release namespace; the solver Service is the chart's.
    assert config.controller_namespace == "tls-system"
    assert config.solver.http01.solver_service == "edge-certbotk8s-solver"
    _one(docs, "Service", "edge-certbotk8s-solver")
    assert not config.warnings
    deployment = _one(docs, "Deployment")
    (container,) = _pod(deployment)["spec"]["containers"]
    assert container["image"] == "ghcr.io/certbotk8s/certbotk8s:0.1.0"
    assert container["args"][:1] == ["controller"]
    assert "--lease-name" not in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert _pod(deployment)["spec"]["securityContext"]["runAsUser"] == 65532
    (spread,) = _pod(deployment)["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "controller"
    assert deployment["spec"]["replicas"] == 2
    binding = _one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edge-certbotk8s",
                                    "namespace": "tls-system"}]


def test_other_values_render(lab: Lab, tmp_path: Path) -> None:
    docs = _template(lab, tmp_path, OTHER_VALUES, release="certbotk8s", namespace="ops")
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "CronJob", "ServiceMonitor", "PrometheusRule", "NetworkPolicy",
            "ServiceEntry"} <= kinds
    for doc in docs:
        assert doc["metadata"]["labels"]["team"] == "platform", doc["kind"]
        assert doc["metadata"]["annotations"]["owner"] == "platform@corp.test", doc["kind"]
    deployment, cron = _one(docs, "Deployment"), _one(docs, "CronJob")
    assert deployment["spec"]["replicas"] == 3
    assert _one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert cron["spec"]["schedule"] == "7 3 * * *"
    for workload in (deployment, cron):
        pod = _pod(workload)
        spec = pod["spec"]
        assert spec["nodeSelector"] == OTHER_VALUES["nodeSelector"]
        assert spec["tolerations"] == OTHER_VALUES["tolerations"]
        assert spec["affinity"] == OTHER_VALUES["affinity"]
        assert spec["priorityClassName"] == "system-cluster-critical"
        assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        (container,) = spec["containers"]
        assert container["image"] == "registry.example/certbotk8s@sha256:" + "ab" * 32
    (cron_container,) = _pod(cron)["spec"]["containers"]
    args = cron_container["args"]
    assert args[args.index("--pushgateway") + 1] == "http://pushgateway.monitoring:9091"
    (ctl_container,) = _pod(deployment)["spec"]["containers"]
    assert ctl_container["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["from"] == OTHER_VALUES["networkPolicy"]["http01From"]
    assert policy["ingress"][1]["from"] == OTHER_VALUES["networkPolicy"]["metricsFrom"]
    assert [p["port"] for p in policy["egress"][1]["ports"]] == [443, 6443]
    monitor = _one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    config = load_config(_one(docs, "ConfigMap")["data"]["config.yaml"])
    assert config.controller_namespace == "ops"
    assert config.istio.gateway_namespace == "istio-ingress"
    assert "bind" in config.dns_providers
    # Credentials are referenced, never inlined.
    assert "secretRef" in _one(docs, "ConfigMap")["data"]["config.yaml"]


# The proxies whose pods may reach the HTTP-01 port by default (the same as the kustomize base).
HTTP01_PEERS = [
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
     "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
     "podSelector": {"matchLabels": {"istio": "ingressgateway"}}},
]


def test_http01_port_admits_the_proxy_pods_only(lab: Lab, tmp_path: Path) -> None:
    """Finding 1 of issue 20: the HTTP-01 port was open to every pod (one pod held every
    connection of the responder). Default: ingress-nginx's and the Istio ingress gateway's
    pods; `networkPolicy.http01From` replaces them; `[]` admits anyone."""
    def http01_rule(values: Doc) -> Doc:
        rules: list[Doc] = _one(_template(lab, tmp_path, values), "NetworkPolicy")["spec"][
            "ingress"]
        (rule,) = [r for r in rules if r["ports"] == [{"port": "http01", "protocol": "TCP"}]]
        return rule

    assert http01_rule({})["from"] == HTTP01_PEERS
    own = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}]
    assert http01_rule({"networkPolicy": {"http01From": own}})["from"] == own
    assert "from" not in http01_rule({"networkPolicy": {"http01From": []}})


def test_prometheus_rule_follows_the_mode(lab: Lab, tmp_path: Path) -> None:
    """The leader alert only where a controller runs, the pass's freshness only where the
    CronJob pushes; the same rules as the kustomize files for the same mode."""
    def groups(values: Doc) -> list[str]:
        docs = _template(lab, tmp_path, _merged({"metrics": {"prometheusRule": {
            "enabled": True}}}, values))
        return [g["name"] for g in _one(docs, "PrometheusRule")["spec"]["groups"]]

    push = {"cronjob": {"pushgateway": "http://pushgateway.monitoring:9091"}}
    assert groups({}) == ["certbotk8s", "certbotk8s-controller"]
    assert groups({"mode": "cronjob"}) == ["certbotk8s"]
    assert groups({"mode": "cronjob", **push}) == ["certbotk8s", "certbotk8s-cronjob"]
    assert groups({"mode": "both", **push}) == ["certbotk8s", "certbotk8s-controller",
                                                "certbotk8s-cronjob"]
    for values, shipped in (({}, MANIFESTS / "optional" / "prometheusrule.yaml"),
                            ({"mode": "cronjob", **push},
                             MANIFESTS / "optional" / "cronjob" / "prometheusrule.yaml")):
        docs = _template(lab, tmp_path, _merged(
            {"metrics": {"prometheusRule": {"enabled": True}}}, values))
        assert _one(docs, "PrometheusRule")["spec"] == yaml.safe_load(shipped.read_text())["spec"]


def test_pdb_only_with_a_replica_to_spare(lab: Lab, tmp_path: Path) -> None:
    def pdbs(replicas: int) -> list[Doc]:
        docs = _template(lab, tmp_path, {"controller": {"replicas": replicas}})
        return [d for d in docs if d["kind"] == "PodDisruptionBudget"]

    assert pdbs(1) == []  # it would block every node drain
    assert len(pdbs(2)) == 1


def test_service_account_options(lab: Lab, tmp_path: Path) -> None:
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/dns"}
    docs = _template(lab, tmp_path, {"serviceAccount": {"name": "dns-writer",
                                                        "annotations": irsa}})
    account = _one(docs, "ServiceAccount")
    assert account["metadata"]["name"] == "dns-writer"
    assert account["metadata"]["annotations"] == irsa
    assert _pod(_one(docs, "Deployment"))["spec"]["serviceAccountName"] == "dns-writer"
    for binding in (_one(docs, "ClusterRoleBinding"), _one(docs, "RoleBinding")):
        assert binding["subjects"][0]["name"] == "dns-writer"
    existing = _template(lab, tmp_path, {"mode": "both", "serviceAccount": {
        "create": False, "name": "platform-certs"}})
    assert not [d for d in existing if d["kind"] == "ServiceAccount"]
    for workload in (_one(existing, "Deployment"), _one(existing, "CronJob")):
        assert _pod(workload)["spec"]["serviceAccountName"] == "platform-certs"
    assert "serviceAccount.name is required" in _refusal(
        lab, tmp_path, _merged(POLICY, {"serviceAccount": {"create": False}}))


def test_extra_volumes_and_security_contexts(lab: Lab, tmp_path: Path) -> None:
    values = {"mode": "both",
              "extraVolumes": [{"name": "corp-ca", "secret": {"secretName": "corp-ca"}}],
              "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/corp-ca",
                                     "readOnly": True}],
              "podSecurityContext": {"runAsUser": 10001},
              "securityContext": {"readOnlyRootFilesystem": True},
              "controller": {"topologySpreadConstraints": []}}
    docs = _template(lab, tmp_path, values)
    for workload in (_one(docs, "Deployment"), _one(docs, "CronJob")):
        spec = _pod(workload)["spec"]
        assert {"name": "corp-ca", "secret": {"secretName": "corp-ca"}} in spec["volumes"]
        assert [v["name"] for v in spec["volumes"]][:2] == ["config", "tmp"]
        (container,) = spec["containers"]
        assert {"name": "corp-ca", "mountPath": "/etc/corp-ca",
                "readOnly": True} in container["volumeMounts"]
        # Helm merges a map value over the default: the keys given change, the others stay.
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["fsGroup"] == 65532
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "topologySpreadConstraints" not in _pod(_one(docs, "Deployment"))["spec"]


def test_lease_name_is_the_one_the_cli_looks_for(lab: Lab, tmp_path: Path) -> None:
    """Whatever the release is called, the controller elects on the Lease `renew` and `revoke`
    look for (the CLI's default), the one the kustomize Deployment uses too."""
    docs = _template(lab, tmp_path, release="edge")
    (container,) = _pod(_one(docs, "Deployment"))["spec"]["containers"]
    parsed = _parser().parse_args(container["args"])
    assert parsed.lease_name == LEADER_LEASE
    for command in (["renew", "default/web-tls"], ["revoke", "default/web-tls"]):
        assert _parser().parse_args(command).lease_name == LEADER_LEASE
    kustomize = _docs(_run(lab, "KUBECTL", "kustomize", str(MANIFESTS / "overlays" / "controller")))
    (k_container,) = _pod(_one(kustomize, "Deployment"))["spec"]["containers"]
    assert _parser().parse_args(k_container["args"]).lease_name == LEADER_LEASE


# --- chart and kustomize describe the same installation ---------------------------------------

_HASH = re.compile(r"-[a-z0-9]{10}$")


def _normalise(doc: Doc) -> Doc:
    """Drop what legitimately differs: Helm's labels and checksums, image, hashed names."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("annotations", None)
    doc["metadata"].pop("labels", None)
    if doc["kind"] in ("Deployment", "CronJob"):
        outer = doc["spec"]["jobTemplate"] if doc["kind"] == "CronJob" else doc
        outer.get("metadata", {}).pop("labels", None)
        doc["spec"].pop("selector", None)
        pod = _pod(doc)
        pod["metadata"] = {}
        spec = pod["spec"]
        spec.pop("topologySpreadConstraints", None)
        (container,) = spec["containers"]
        container.pop("image")
        args = container["args"]
        for flag in ("--log-level", "--lease-name"):
            if flag in args:
                i = args.index(flag)
                del args[i:i + 2]
        container["env"] = sorted(container["env"], key=lambda e: e["name"])
        for volume in spec["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = _HASH.sub("", volume["configMap"]["name"])
    if doc["kind"] in ("Service", "PodDisruptionBudget"):
        doc["spec"].pop("selector", None)
    if doc["kind"] == "NetworkPolicy":
        doc["spec"].pop("podSelector")
    if doc["kind"] == "ConfigMap":
        doc["metadata"]["name"] = _HASH.sub("", doc["metadata"]["name"])
        config = load_config(doc["data"]["config.yaml"], "certbotk8s")
        # The host policy differs on purpose: the chart needs one chosen, kustomize ships `{}`.
        tenants = dataclasses.replace(config.tenants, host_patterns=None, allow_any_host=None)
        doc["data"] = {"config": dataclasses.replace(config, tenants=tenants)}
    return doc


def test_chart_and_kustomize_render_the_same_objects(lab: Lab, tmp_path: Path) -> None:
    kustomize = _docs(_run(lab, "KUBECTL", "kustomize", str(MANIFESTS / "overlays" / "both")))
    chart = _template(lab, tmp_path, {"mode": "both"})
    # helm does not own the Namespace (`--create-namespace`); the rest is the same set.
    by_id_k = {(d["kind"], _normalise(d)["metadata"]["name"]): _normalise(d)
               for d in kustomize if d["kind"] != "Namespace"}
    by_id_c = {(d["kind"], _normalise(d)["metadata"]["name"]): _normalise(d) for d in chart}
    assert sorted(by_id_k) == sorted(by_id_c)
    for key, doc in by_id_k.items():
        assert by_id_c[key] == doc, key
    # Selectors: the chart's add the release instance to the kustomize ones.
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):
        field = "podSelector" if kind == "NetworkPolicy" else "selector"
        for k_doc in (d for d in kustomize if d["kind"] == kind):
            c_doc = _one(chart, kind, k_doc["metadata"]["name"])
            k_sel = k_doc["spec"][field]
            c_sel = c_doc["spec"][field]
            k_sel = k_sel.get("matchLabels", k_sel)
            c_sel = c_sel.get("matchLabels", c_sel)
            assert k_sel.items() <= c_sel.items(), (kind, k_sel, c_sel)


# --- server-side install ------------------------------------------------------------------------


def test_server_side_install_into_the_lab(lab: Lab, tmp_path: Path, admin_api: ApiClient) -> None:
    release = f"c{uuid.uuid4().hex[:8]}"
    namespace = f"t-{release}"
    values = tmp_path / "install.yaml"
    values.write_text(yaml.safe_dump({"mode": "both", "istioEgress": {"enabled": True},
                                      "networkPolicy": {"enabled": True}, **POLICY}))
    out = _run(lab, "HELM", "install", release, str(CHART), "--namespace", namespace,
               "--create-namespace", "--server-side=true", "--values", str(values))
    assert "STATUS: deployed" in out
    try:
        name = f"{release}-certbotk8s"
        apps: Any = k8s.AppsV1Api(admin_api)
        deployment = apps.read_namespaced_deployment(name, namespace)
        assert deployment.spec.replicas == 2
        env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
        assert env["POD_NAMESPACE"].value_from.field_ref.field_path == "metadata.namespace"
        batch: Any = k8s.BatchV1Api(admin_api)
        cron = batch.read_namespaced_cron_job(f"{name}-renew", namespace)
        assert cron.spec.concurrency_policy == "Forbid"
        core: Any = k8s.CoreV1Api(admin_api)
        config_map = core.read_namespaced_config_map(f"{name}-config", namespace)
        assert load_config(config_map.data["config.yaml"]).controller_namespace == namespace
        assert core.read_namespaced_service(f"{name}-solver", namespace).spec.ports[0].port == 80
        assert core.read_namespaced_service_account(name, namespace).metadata.name == name
        rbac: Any = k8s.RbacAuthorizationV1Api(admin_api)
        binding = rbac.read_cluster_role_binding(name)
        assert (binding.subjects[0].name, binding.subjects[0].namespace) == (name, namespace)
        assert rbac.read_namespaced_role(name, namespace).rules
        k8s.PolicyV1Api(admin_api).read_namespaced_pod_disruption_budget(name, namespace)
        k8s.NetworkingV1Api(admin_api).read_namespaced_network_policy(name, namespace)
        k8s.CustomObjectsApi(admin_api).get_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "serviceentries", f"{name}-acme")
        # Server-side apply: the fields are owned by helm's field manager.
        managers = {m.manager for m in deployment.metadata.managed_fields}
        assert any("helm" in m for m in managers), managers
    finally:
        _run(lab, "HELM", "uninstall", release, "--namespace", namespace)
    with pytest.raises(k8s.ApiException) as gone:
        k8s.RbacAuthorizationV1Api(admin_api).read_cluster_role(f"{release}-certbotk8s")
    assert gone.value.status == 404


def _writes(rules: list[Doc]) -> set[tuple[str, str]]:
    """(apiGroup, resource) pairs a list of RBAC rules may create."""
    return {(g, r) for rule in rules if "create" in rule["verbs"]
            for g in rule["apiGroups"] for r in rule["resources"]}


@pytest.mark.parametrize("route_namespace", ["source", "controller"])
def test_routing_rbac_follows_route_namespace(lab: Lab, tmp_path: Path,
                                              route_namespace: str) -> None:
    """HTTP-01 routing in the source's namespace needs cluster-wide writes of the route kinds
    and Services and a ReferenceGrant in the release namespace; in the controller's namespace,
    the route kinds there only: the chart grants only what is used (the whole comparison:
    tests/lab/test_rbac_render.py)."""
    values = {"config": {"solver": {"http01": {"routeNamespace": route_namespace}}}}
    docs = _template(lab, tmp_path, values)
    routing = {("networking.k8s.io", "ingresses"), ("networking.istio.io", "virtualservices"),
               ("gateway.networking.k8s.io", "httproutes"), ("", "services")}
    cluster = _writes(_one(docs, "ClusterRole")["rules"])
    assert (routing <= cluster) is (route_namespace == "source")
    assert not routing & cluster or route_namespace == "source"
    role = _writes(_one(docs, "Role")["rules"])
    grants = ("gateway.networking.k8s.io", "referencegrants")
    assert (grants in role) is (route_namespace == "source")
    assert grants not in cluster
    assert (routing - {("", "services")} <= role) is (route_namespace == "controller")
    config = load_config(_one(docs, "ConfigMap")["data"]["config.yaml"])
    assert config.solver.http01.route_namespace == route_namespace
