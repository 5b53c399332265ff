"""RBAC rules against the table of API calls (certbotk8s.adapters.kube.api_calls), both ways:
the grants a rendering of manifests/ or the chart binds to the ServiceAccount, as atoms
(binding, group, resource, verb, name), compared with the atoms the table needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from certbotk8s.adapters.kube.api_calls import CALLS, Caller, Needed, Where

Doc = dict[str, Any]
CLUSTER = "cluster"  # the ClusterRole (every namespace, and cluster-scoped objects)
OWN = "own"  # the Roles in the controller's namespace
Atom = tuple[str, str, str, str, str | None]  # binding, group, resource, verb, name (None: any)


@dataclass(frozen=True)
class Install:
    """What a rendering is for: its namespace, served namespaces (empty: cluster-wide mode)
    and where HTTP-01 routes go."""

    namespace: str
    served: tuple[str, ...] = ()
    route_namespace: str = "source"


def needed(install: Install) -> set[Atom]:
    """The atoms the ServiceAccount's calls need under `install`: a Role's in the served
    namespaces named by the namespace, the controller's own as OWN, the ClusterRole's as
    CLUSTER. What a broader grant of the same binding covers is left out (one rule, not two)."""
    atoms: set[Atom] = set()
    for call in CALLS:
        if call.caller is not Caller.SERVICE_ACCOUNT:
            continue
        if call.needed is Needed.ROUTE_IN_SOURCE and install.route_namespace != "source":
            continue
        if call.needed is Needed.CLUSTER_MODE and install.served:
            continue
        if call.where is Where.OWN:
            bindings: Iterable[str] = (OWN,)
        elif call.where is Where.CLUSTER or not install.served:
            bindings = (CLUSTER,)
        else:
            bindings = install.served
        for binding in bindings:
            for name in call.names or (None,):
                atoms.add((binding, call.group, call.resource, call.verb, name))
    return _without_covered(atoms)


def _without_covered(atoms: set[Atom]) -> set[Atom]:
    """Drop atoms another atom grants already: a named one under the same unnamed one, and
    the controller's namespace's under the ClusterRole's."""
    def covered(atom: Atom) -> bool:
        binding, group, resource, verb, name = atom
        broader: list[Atom] = [(binding, group, resource, verb, None)] if name else []
        if binding == OWN:
            broader += [(CLUSTER, group, resource, verb, None), (CLUSTER, group, resource, verb,
                                                                 name)]
        return any(b in atoms and b != atom for b in broader)
    return {a for a in atoms if not covered(a)}


def granted(docs: list[Doc], install: Install, service_account: str = "certbotk8s") -> set[Atom]:
    """The atoms the rendered objects grant the ServiceAccount `service_account` of
    `install.namespace` through its bindings."""
    subject = {"kind": "ServiceAccount", "name": service_account,
               "namespace": install.namespace}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d.get("kind") in ("Role", "ClusterRole")}
    atoms: set[Atom] = set()
    for doc in docs:
        if doc.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if subject not in [{k: s.get(k) for k in subject} for s in doc.get("subjects") or []]:
            continue
        ref = doc["roleRef"]
        bound_in = doc["metadata"].get("namespace")
        role = roles[(ref["kind"], bound_in if ref["kind"] == "Role" else None, ref["name"])]
        if doc["kind"] == "ClusterRoleBinding":
            binding = CLUSTER
        else:
            binding = OWN if bound_in == install.namespace else bound_in
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [None]:
                            atoms.add((binding, group, resource, verb, name))
    return atoms


def differences(docs: list[Doc], install: Install, service_account: str = "certbotk8s") -> str:
    """'' when the rendered RBAC grants exactly what the table needs; else what differs."""
    have, want = granted(docs, install, service_account), needed(install)

    def show(atoms: set[Atom]) -> str:
        return "".join(f"\n  {b}: {g or 'core'}/{r} {v}" + (f" [{n}]" if n else "")
                       for b, g, r, v, n in sorted(atoms, key=str))
    text = ""
    if want - have:
        text += "needed by a call but not granted:" + show(want - have) + "\n"
    if have - want:
        text += "granted but used by no call (or broader than the call):" + show(have - want)
    return text


def split_docs(docs: Iterable[Doc | None]) -> list[Doc]:
    return [d for d in docs if d]
