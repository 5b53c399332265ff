"""Whether this identity may do something, asked before doing it (a SelfSubjectAccessReview,
which every authenticated user may create through the default role `system:basic-user`).

For a request whose refusal is expected in some installations (a cluster-wide list under
namespaced mode's Role-only RBAC): asking first keeps the API server's audit log free of 403s.
Contract: True only when the API server says allowed; any failure to ask is False.
"""

from __future__ import annotations

import json

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from certbotk8s.adapters.kube.rest import KubeRest

REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def allowed(api: ApiClient, verb: str, group: str, resource: str,
            namespace: str | None = None) -> bool:
    """May this identity `verb` `resource` of `group` in `namespace` (None: every namespace)?"""
    attributes = {"verb": verb, "group": group, "resource": resource}
    if namespace is not None:
        attributes["namespace"] = namespace
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    try:
        answer = json.loads(KubeRest(api).post(REVIEWS, body).data)
    except (ApiException, HTTPError, OSError, TypeError, ValueError):
        return False
    status = answer.get("status") if isinstance(answer, dict) else None
    return isinstance(status, dict) and status.get("allowed") is True
