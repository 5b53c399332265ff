"""No tenant input escapes as an exception: arbitrary objects through discovery, plan, status."""

from __future__ import annotations

import os
import unicodedata
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certbotk8s.app.commands.status import StatusRow, render_table
from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import SecretRef
from certbotk8s.core.renewal.plan import plan
from certbotk8s.core.sources import annotations as ann
from certbotk8s.core.sources import cert_manager as cm
from certbotk8s.core.sources.discovery import trim_source
from certbotk8s.core.sources.host_memo import HostMemo
from certbotk8s.core.sources.ownership import Holding, discover_owned

from .factories import T0, ingress, make_config
from .factories import tls_entry as tls_of

# CI runs 10,000 examples (the issue's floor); bench/hostile_input.py runs many more.
EXAMPLES = int(os.environ.get("CERTBOTK8S_HOSTILE_EXAMPLES", "10000"))
_SETTINGS: dict[str, Any] = {
    "istio": {"allowedSourceNamespaces": ["team-a"], "gatewayNamespaces": ["edge"]},
    "tenants": {"hostPatterns": {"team-a": ["*.a.example.com"]}, "maxHostsPerCertificate": 5},
}
CONFIG = make_config(**_SETTINGS)
# Moving from cert-manager (config `migration`): its annotations opt sources in and set options.
MIGRATING = make_config(**_SETTINGS, migration={"certManagerIssuers": {
    "letsencrypt-prod": "le", "letsencrypt-staging": "staging"}})

nasty_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["99999999999d", "1e400h", "0s", "-5m", "\x1b[2J", "*.", "*", "a..b",
                     "xn--", "ns/host.example.com", "\u202e", "..", "*.a.example.com",
                     "www.a.example.com", "b.example.com", "x" * 300, "9" * 400 + "d",
                     "istio-system", "edge", "kube-system", "team-a", "dns-01", "http-01",
                     "true", "false", "le", "bind", "rsa-2048", "shortlived"]),
)
# cert-manager's values (config `migration`), valid and not
cert_manager_values = st.one_of(nasty_text, st.sampled_from([
    "letsencrypt-prod", " letsencrypt-staging ", "selfsigned", "RSA", "ecdsa", "Ed25519",
    "4096", "384", "521", "0", "720h", "360h0m0s", "1h30m", "-1h", "9999999999h", "1.5h",
    "ClusterIssuer", "cert-manager.io", "x" * 257]))
json_leaf = st.one_of(st.none(), st.integers(), st.floats(), nasty_text)
# Wrong shapes where an object wants a mapping, list or string (kept small: generation is the
# cost of this test, not the code under test).
json_value = st.one_of(json_leaf, st.lists(json_leaf, max_size=2),
                       st.dictionaries(nasty_text, json_leaf, max_size=2))
annotation_keys = st.one_of(st.sampled_from(sorted(ann.SOURCE_ANNOTATIONS | {
    ann.TLS_ACME, ann.INGRESS_CLASS, "certbotk8s.io/bogus"})), nasty_text)
# cert-manager's Ingress annotations: the ones read, the ones ignored, unknown ones
cert_manager_keys = st.one_of(st.sampled_from(sorted(cm.READ | {
    cm.DURATION, "cert-manager.io/common-name", "cert-manager.io/alt-names",
    "cert-manager.io/private-key-encoding", "cert-manager.io/private-key-rotation-policy",
    "cert-manager.io/usages", "cert-manager.io/subject-organizations",
    "cert-manager.io/revision-history-limit", "cert-manager.io/bogus"})),
    nasty_text.map(lambda k: cm.PREFIX + k))
annotation_maps = st.one_of(
    st.dictionaries(annotation_keys, nasty_text, max_size=3).map(
        lambda a: {ann.ENABLED: "true", **a}),
    # opted in by cert-manager's issuer annotations alone (under `migration`), or not at all
    st.dictionaries(st.one_of(cert_manager_keys, annotation_keys), cert_manager_values,
                    max_size=5),
    json_value,
)


def _host_list() -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(nasty_text, max_size=3), json_value)


tls_entry = st.fixed_dictionaries({"secretName": st.one_of(nasty_text, json_value),
                                   "hosts": _host_list()})
ingress_spec = st.fixed_dictionaries({
    "tls": st.one_of(st.lists(tls_entry, max_size=2), json_value),
    "rules": st.one_of(st.lists(st.fixed_dictionaries({"host": nasty_text}), max_size=2),
                       json_value),
    "ingressClassName": st.one_of(nasty_text, json_value),
})
istio_server = st.fixed_dictionaries({
    "port": st.one_of(st.fixed_dictionaries({"protocol": st.sampled_from(["HTTPS", "HTTP"]),
                                             "name": nasty_text, "number": json_leaf}),
                      json_value),
    "hosts": _host_list(),
    "tls": st.one_of(st.fixed_dictionaries({
        "mode": st.one_of(st.just("SIMPLE"), nasty_text),
        "credentialName": st.one_of(nasty_text, json_value),
        "serverCertificate": st.one_of(st.just("/etc/istio/ingressgateway-certs/tls.crt"),
                                       nasty_text)}), json_value),
})
istio_spec = st.fixed_dictionaries({"servers": st.one_of(st.lists(istio_server, max_size=2),
                                                         json_value)})
listener = st.fixed_dictionaries({
    "name": nasty_text, "protocol": st.sampled_from(["HTTPS", "TLS", "HTTP", "UDP"]),
    "hostname": st.one_of(nasty_text, json_value),
    "tls": st.one_of(st.fixed_dictionaries({"mode": nasty_text, "certificateRefs": st.lists(
        st.dictionaries(st.sampled_from(["name", "namespace", "kind", "group"]), json_value),
        max_size=2)}), json_value),
})
gateway_spec = st.fixed_dictionaries({"listeners": st.one_of(st.lists(listener, max_size=2),
                                                             json_value)})


def _objects(api: list[str], kind: str, spec: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    obj = st.fixed_dictionaries({
        "apiVersion": st.one_of(st.sampled_from(api), json_value),
        "kind": st.one_of(st.just(kind), json_value),
        "metadata": st.one_of(st.fixed_dictionaries({
            "name": st.one_of(nasty_text, json_value),
            "namespace": st.one_of(st.sampled_from(["team-a", "team-b", "istio-system"]),
                                   nasty_text, json_value),
            "uid": nasty_text,
            "annotations": annotation_maps}), json_value),
        "spec": st.one_of(spec, json_value),
    })
    return st.lists(st.one_of(obj, json_leaf), max_size=2)


# Well-formed Ingresses whose annotations alone are hostile, so that most examples reach the
# options (cert-manager's included) rather than stop at a malformed object.
annotated_ingresses = st.lists(st.builds(
    lambda name, ns, annotations: ingress(name, ns, annotations=annotations, tls=[
        tls_of(f"{name}-tls", f"{name}.a.example.com")]),
    st.sampled_from(["w", "x"]), st.sampled_from(["team-a", "team-b"]),
    st.tuples(  # mostly opted in (either way), then anything
        st.dictionaries(st.sampled_from([cm.ISSUER, cm.CLUSTER_ISSUER, ann.ENABLED]),
                        st.sampled_from(["letsencrypt-prod", "letsencrypt-staging", "true"]),
                        max_size=2),
        st.dictionaries(st.one_of(cert_manager_keys, annotation_keys), cert_manager_values,
                        max_size=5)).map(lambda pair: {**pair[0], **pair[1]})),
    min_size=1, max_size=2)
ingresses = st.one_of(_objects(["networking.k8s.io/v1"], "Ingress", ingress_spec),
                      annotated_ingresses)
istio_gateways = _objects(["networking.istio.io/v1", "networking.istio.io/v1beta1"], "Gateway",
                          istio_spec)
gateways = _objects(["gateway.networking.k8s.io/v1"], "Gateway", gateway_spec)
holdings = st.lists(st.builds(
    Holding, st.builds(SecretRef, st.sampled_from(["team-a", "team-b"]), nasty_text),
    st.lists(nasty_text, max_size=2).map(tuple), nasty_text), max_size=2)


def _safe_for_a_terminal(text: str) -> bool:
    return all(c == "\n" or unicodedata.category(c)[0] not in "CZ" or c == " " for c in text)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(ingresses, istio_gateways, gateways, st.lists(json_leaf, max_size=1), holdings,
       st.sampled_from([CONFIG, MIGRATING]))
def test_no_tenant_object_raises_out_of_discovery_plan_or_status(
    ing: list[Any], istio: list[Any], gws: list[Any], grants: list[Any], held: list[Holding],
    config: Config,
) -> None:
    found = discover_owned(ing, istio, gws, grants, config, held)
    actions = plan(found.desired, {}, T0, {})
    assert {a.desired.secret for a in actions} == {d.secret for d in found.desired}
    for problem in (*found.problems, *found.notices):
        assert problem.source.namespace  # every refusal names its source
        # tenant text is echoed quoted and bounded: one line of at most 1 KiB (finding 5)
        assert len(problem.message.encode()) <= 1024
        assert "\n" not in problem.message and _safe_for_a_terminal(problem.message)
    rows = [StatusRow(str(a.desired.source), ",".join(a.desired.spec.hosts),
                      str(a.desired.secret), "-", "now", a.reason.message, "")
            for a in actions]
    rows += [StatusRow(str(p.source), "-", "-", "-", "never", p.reason, p.message)
             for p in (*found.problems, *found.notices)]
    assert _safe_for_a_terminal(render_table(rows))


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(ingresses, istio_gateways, gateways, st.sampled_from([CONFIG, MIGRATING]))
def test_informer_trimming_changes_nothing_discovery_sees(
    ing: list[Any], istio: list[Any], gws: list[Any], config: Config
) -> None:
    # The API server gives every item of a list its resource's kind (the informer fills it in
    # where a list omits it), so an Ingress list never holds a "Gateway": model that first.
    def kinded(objs: list[Any], kind: str) -> list[Any]:
        return [{**o, "kind": kind} if isinstance(o, dict) else o for o in objs]

    def trimmed(objs: list[Any]) -> list[Any]:
        return [trim_source(o) if isinstance(o, dict) else o for o in objs]

    ing, istio, gws = kinded(ing, "Ingress"), kinded(istio, "Gateway"), kinded(gws, "Gateway")
    assert discover_owned(trimmed(ing), trimmed(istio), trimmed(gws), [], config, []) == \
        discover_owned(ing, istio, gws, [], config, [])


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(ingresses, istio_gateways, gateways, holdings)
def test_the_host_memo_changes_nothing_discovery_sees(
    ing: list[Any], istio: list[Any], gws: list[Any], held: list[Holding]
) -> None:
    """The controller's passes share what the last one normalised (finding 4): the same
    result as a pass without it, on the first pass and on the next."""
    memo = HostMemo()
    plain = discover_owned(ing, istio, gws, [], CONFIG, held)
    assert discover_owned(ing, istio, gws, [], CONFIG, held, memo=memo) == plain
    assert discover_owned(ing, istio, gws, [], CONFIG, held, memo=memo) == plain


def test_informer_trimming_drops_what_discovery_does_not_read() -> None:
    big = "x" * 200_000
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "w", "namespace": "team-a", "managedFields": [{"big": big}],
                        "annotations": {ann.ENABLED: "true", "other.io/blob": big,
                                        ann.RENEW_BEFORE: big}},
           "spec": {"rules": [{"host": "www.a.example.com", "http": {"paths": [big]}}]},
           "status": {"loadBalancer": big}}
    kept = trim_source(obj)
    assert len(repr(kept)) < 1000
    assert discover_owned([kept], [], [], [], CONFIG, []) == discover_owned(
        [obj], [], [], [], CONFIG, [])


@pytest.mark.parametrize("annotations", [
    {cm.CLUSTER_ISSUER: "x" * 300},  # refused as too long: its length was echoed
    {ann.ENABLED: "x" * 300},  # not opted in, `enabled` malformed: the same
    {ann.ENABLED: "true", ann.ISSUER: "x" * 300},
])
def test_an_over_long_value_is_refused_alike_trimmed_or_not(annotations: dict[str, str]) -> None:
    """Informers keep values cut one past the longest accepted: the refusal (its Event) must
    not change with it (the cert-manager generators found `(300 characters)` against 257)."""
    obj = ingress("w", "team-a", annotations=annotations,
                  tls=[tls_of("w-tls", "w.a.example.com")])
    found = discover_owned([obj], [], [], [], MIGRATING, [])
    assert found.problems and not found.desired
    assert discover_owned([trim_source(obj)], [], [], [], MIGRATING, []) == found


@settings(max_examples=2000, deadline=None, database=None)
@given(st.one_of(st.text(max_size=80),
                st.from_regex(r"\d{1,40}(\.\d{1,5})?[dhms]", fullmatch=True)))
def test_durations_raise_only_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert timedelta(seconds=1) <= value <= timedelta(days=3650)


def test_huge_renew_before_is_a_refusal_not_an_overflow() -> None:
    """`renew-before: 99999999999d` used to raise OverflowError and stop every reconcile."""
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "w", "namespace": "team-a",
                        "annotations": {ann.ENABLED: "true", ann.RENEW_BEFORE: "99999999999d"}},
           "spec": {"rules": [{"host": "www.a.example.com"}]}}
    found = discover_owned([obj], [], [], [], CONFIG, [])
    assert found.desired == ()
    assert [p.reason for p in found.problems] == ["InvalidAnnotation"]
    assert "renew-before" in found.problems[0].message
