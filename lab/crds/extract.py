"""Pick the lab's CRDs out of the Go modules istio.io/api and sigs.k8s.io/gateway-api.

Reads the output of `go mod download -json <istio.io/api@v> <sigs.k8s.io/gateway-api@v>` on stdin
(a stream of JSON objects) and writes one YAML file per CRD into the directory given as argument.
"""

from __future__ import annotations

import json
import pathlib
import sys

import yaml

# serviceentries: for the server-side dry-run of manifests/components/istio-egress.
ISTIO_CRDS = (
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
    "serviceentries.networking.istio.io",
)
ISTIO_SERVED = {"v1", "v1beta1"}
GATEWAY_API_FILES = ("gateways", "httproutes", "referencegrants", "gatewayclasses")


def module_dirs(text: str) -> dict[str, pathlib.Path]:
    decoder, pos, dirs = json.JSONDecoder(), 0, {}
    text = text.strip()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        if obj.get("Error"):
            raise SystemExit(f"go mod download: {obj['Path']}: {obj['Error']}")
        dirs[obj["Path"]] = pathlib.Path(obj["Dir"])
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return dirs


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    dirs = module_dirs(sys.stdin.read())
    written = []

    istio = dirs["istio.io/api"] / "kubernetes" / "customresourcedefinitions.gen.yaml"
    found = {}
    for doc in yaml.safe_load_all(istio.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        if doc["metadata"]["name"] in ISTIO_CRDS:
            found[doc["metadata"]["name"]] = doc
    for name in ISTIO_CRDS:
        doc = found.get(name) or sys.exit(f"{name} not in {istio}")
        served = {v["name"] for v in doc["spec"]["versions"] if v.get("served")}
        if not served >= ISTIO_SERVED:
            sys.exit(f"{name} serves {sorted(served)}, expected at least {sorted(ISTIO_SERVED)}")
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(path.name)

    std = dirs["sigs.k8s.io/gateway-api"] / "config" / "crd" / "standard"
    for plural in GATEWAY_API_FILES:
        src = std / f"gateway.networking.k8s.io_{plural}.yaml"
        docs = [d for d in yaml.safe_load_all(src.read_text()) if d]
        # Only the CRD: the files also carry ValidatingAdmissionPolicy documents.
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        if len(crds) != 1:
            sys.exit(f"{src}: expected one CRD, found {len(crds)}")
        path = out / f"{crds[0]['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(crds[0], sort_keys=False))
        written.append(path.name)

    print(f"wrote {len(written)} CRDs to {out}: {', '.join(written)}", file=sys.stderr)


if __name__ == "__main__":
    main()
