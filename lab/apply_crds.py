"""Apply the lab's CRDs with the admin kubeconfig, wait until Established, create namespaces.

Usage: apply_crds.py --kubeconfig FILE [--namespace NS ...] CRD_DIR
Uses only the Python `kubernetes` client, so no kubectl is needed.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException


def apply_crd(api: client.ApiextensionsV1Api, body: dict) -> None:
    name = body["metadata"]["name"]
    try:
        api.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = api.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        api.replace_custom_resource_definition(name, body)


def established(api: client.ApiextensionsV1Api, name: str) -> bool:
    crd = api.read_custom_resource_definition(name)
    conditions = crd.status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("crd_dir", type=pathlib.Path)
    args = parser.parse_args()

    api_client = config.new_client_from_config(config_file=args.kubeconfig)
    ext = client.ApiextensionsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    started = time.monotonic()

    names = []
    for path in sorted(args.crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                apply_crd(ext, doc)
                names.append(doc["metadata"]["name"])
    if not names:
        print(f"no CRDs in {args.crd_dir}", file=sys.stderr)
        return 1

    pending = set(names)
    while pending:
        pending = {n for n in pending if not established(ext, n)}
        if pending and time.monotonic() - started > args.timeout:
            print(f"CRDs not Established: {sorted(pending)}", file=sys.stderr)
            return 1
        if pending:
            time.sleep(0.1)

    for ns in args.namespace:
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        except ApiException as exc:
            if exc.status != 409:
                raise
    print(
        f"{len(names)} CRDs Established, namespaces {', '.join(args.namespace) or '-'} "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
