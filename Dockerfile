# syntax=docker/dockerfile:1
# certbotk8s image. The builder stage builds every wheel and installs them into a virtual
# environment at /opt/certbotk8s; scripts/image_rootfs.py then collects what that environment
# needs to run (interpreter, stdlib, shared libraries found with ldd, CA bundle, /etc/passwd).
# The final stage is FROM scratch: no shell, no pip, no package manager, uid 65532.
# Build it with scripts/image (podman); docs/installation.md covers multi-arch builds and pushes.
#
# Trade-off of having no shell: an `exec` DNS provider's command must be a static binary or a
# Python script (command: [/opt/certbotk8s/bin/python, /hooks/dns.py]); a `#!/bin/sh` hook
# needs an image of your own with a shell (docs/dns.md). Nothing else runs a shell: the chart
# and manifests pass only arguments to the entrypoint.

# The base, pinned by digest so a rebuild gets the same bytes. To update it, take the digest of
# the multi-platform index, not of one platform's manifest:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   (the "Digest:" line)
#   or: skopeo inspect --raw docker://python:3.11-slim-bookworm | sha256sum
# and replace it here. scripts/image builds FROM a local Debian bookworm base instead when no
# registry is reachable (IMAGE_BASE=local, its default).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
# Extras of the DNS providers baked in (comma separated; route53 brings boto3). Build with
# --build-arg EXTRAS= for an image without them.
ARG EXTRAS=route53

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS
# botocore ships the API models of every AWS service (~30 MB); Route53 and STS (web identity
# credentials) are the ones the route53 provider calls.
ARG BOTOCORE_SERVICES="route53 sts"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, from pyproject.toml alone: a change under src/ reuses this layer.
COPY pyproject.toml README.md ./
COPY scripts/image_rootfs.py /usr/local/lib/image_rootfs.py
RUN python3 -m venv /opt/build \
    && python3 /usr/local/lib/image_rootfs.py requirements pyproject.toml "${EXTRAS}" \
       > /tmp/requirements.txt \
    && /opt/build/bin/pip wheel --wheel-dir /wheels -r /tmp/requirements.txt \
    && python3 -m venv --without-pip /opt/certbotk8s \
    && /opt/build/bin/pip --python /opt/certbotk8s/bin/python install --no-index --no-compile \
       --find-links /wheels -r /tmp/requirements.txt \
    && python3 /usr/local/lib/image_rootfs.py prune /opt/certbotk8s "${BOTOCORE_SERVICES}" \
    && python3 /usr/local/lib/image_rootfs.py base /rootfs /opt/certbotk8s 65532
# certbotk8s itself, in a layer of its own (small: a new version pushes only this layer).
COPY src ./src
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/certbotk8s/bin/python install --no-index --no-deps --no-compile \
       --no-warn-script-location --root /project /wheels/certbotk8s-*.whl \
    && python3 /usr/local/lib/image_rootfs.py compile /project /opt/certbotk8s

FROM scratch
COPY --from=builder /rootfs /
COPY --from=builder /project /
ENV PATH=/opt/certbotk8s/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
# 8089: HTTP-01 tokens (solver.http01.port); 9090: /healthz, /readyz, /metrics (controller).
EXPOSE 8089 9090
ENTRYPOINT ["/opt/certbotk8s/bin/certbotk8s"]
CMD ["controller"]
# Last, so a new commit rebuilds only this metadata step.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="certbotk8s" \
      org.opencontainers.image.description="Let's Encrypt certificates for Kubernetes Ingress, Istio Gateway and Gateway API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/certbotk8s/certbotk8s" \
      org.opencontainers.image.documentation="https://github.com/certbotk8s/certbotk8s/tree/main/docs"
