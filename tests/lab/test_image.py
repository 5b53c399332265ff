"""The container image, built by scripts/image with podman, runs the controller to a certificate."""

from __future__ import annotations

import base64
import json
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client import ApiClient

from certbotk8s.core.pki import certs

from .conftest import ROOT, Lab, verify_chain
from .controllers import free_port

# A cold machine builds the Debian base and every wheel first (minutes); a warm one reuses both.
pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]

# What works on these machines (shared LAB-NOTES): runc (crun fails on hybrid cgroups), rlimits
# lowered (raising them is not permitted).
PODMAN = ["podman", "--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False,
                          timeout=120)


@pytest.fixture(scope="module")
def image() -> str:
    """The image scripts/image builds (podman's layer cache: seconds when nothing changed)."""
    done = subprocess.run([str(ROOT / "scripts" / "image")], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def mounted(lab: Lab, tmp_path: Path) -> Path:
    """A directory for the container, mounted read-only at /config: the controller's kubeconfig
    (its CA inlined) and the lab's config with Pebble's CA bundle beside it."""
    directory = tmp_path / "config"
    directory.mkdir(mode=0o755)
    kubeconfig = yaml.safe_load(Path(lab["CONTROLLER_KUBECONFIG"]).read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    (directory / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    (directory / "pebble-ca.pem").write_bytes(Path(lab["ACME_CA_BUNDLE"]).read_bytes())
    config: dict[str, Any] = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    for issuer in config["issuers"].values():
        issuer["caBundle"] = "/config/pebble-ca.pem"
    # Its own HTTP-01 port: this test solves DNS-01, and the lab's port may be another's.
    port = free_port()
    config["solver"]["http01"].update(port=port, selfCheckPort=port)
    (directory / "certbotk8s.yaml").write_text(yaml.safe_dump(config))
    for path in directory.iterdir():
        path.chmod(0o644)  # the container runs as uid 65532
    return directory


@pytest.fixture
def container(image: str, mounted: Path, controller_api: ApiClient) -> Iterator[str]:
    """`certbotk8s controller` from the image: uid 65532, read-only root filesystem, the host's
    network (the lab listens on 127.0.0.1); stopped by name at the end."""
    name = f"certbotk8s-lab-{uuid.uuid4().hex[:8]}"
    started = podman(
        "run", "--detach", "--rm", "--name", name, "--read-only", "--user", "65532",
        "--network", "host", *ULIMITS,
        "--volume", f"{mounted}:/config:ro",
        "--env", "KUBECONFIG=/config/kubeconfig",
        "--env", "CERTBOTK8S_CONFIG=/config/certbotk8s.yaml",
        "--env", f"POD_NAME={name}",
        image, "controller", "--metrics-address", "127.0.0.1",
        "--metrics-port", str(free_port()), "--lease-name", f"image-{name}",
        "--identity", name)
    assert started.returncode == 0, started.stderr
    yield name
    logs = podman("logs", name)
    stopped = podman("stop", "--time", "20", name)
    assert stopped.returncode == 0, stopped.stderr
    print(logs.stdout[-4000:], logs.stderr[-4000:])  # shown when the test fails


def wait_for_tls_secret(api: ApiClient, namespace: str, name: str, timeout: int) -> Any:
    """The Secret `name` once it holds a certificate, from a watch on the namespace."""
    core: Any = k8s.CoreV1Api(api)
    watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
    stream = watcher.stream(core.list_namespaced_secret, namespace,
                            field_selector=f"metadata.name={name}", timeout_seconds=timeout)
    for event in stream:
        secret = event["object"]
        if event["type"] in ("ADDED", "MODIFIED") and (secret.data or {}).get("tls.crt"):
            return secret
    raise AssertionError(f"no certificate in Secret {namespace}/{name} within {timeout}s")


def test_controller_from_the_image_issues_a_certificate(
    lab: Lab, admin_api: ApiClient, namespace: str, container: str
) -> None:
    host = lab.host("image")
    networking: Any = k8s.NetworkingV1Api(admin_api)
    networking.create_namespaced_ingress(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"certbotk8s.io/enabled": "true",
                                                    "certbotk8s.io/challenge": "dns-01"}},
        "spec": {"tls": [{"hosts": [host], "secretName": "web-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})

    secret = wait_for_tls_secret(admin_api, namespace, "web-tls", timeout=90)

    chain = base64.b64decode(secret.data["tls.crt"])
    verify_chain(chain, lab.roots())
    assert certs.certificate_info(chain).sans == (host,)
    running = podman("inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
                     container)
    assert running.stdout.split() == ["65532", "true"]


def test_image_has_no_shell_and_no_pip_and_says_what_it_is(image: str) -> None:
    # scripts/check-image-install runs --version, every --help and every import in the image.
    inspected = podman("image", "inspect", "--format", "{{json .Labels}} {{.Config.User}}", image)
    assert inspected.returncode == 0, inspected.stderr
    labels, user = inspected.stdout.rsplit(" ", 1)
    assert json.loads(labels)["org.opencontainers.image.version"] == VERSION
    assert user.strip() == "65532:65532"

    shell = podman("run", "--rm", *ULIMITS, "--entrypoint", "/bin/sh", image, "-c", "true")
    assert shell.returncode != 0 and "/bin/sh" in shell.stderr
    pip = podman("run", "--rm", *ULIMITS, "--entrypoint", "/opt/certbotk8s/bin/python", image,
                 "-c", "import pip")
    assert pip.returncode != 0 and "No module named 'pip'" in pip.stderr
