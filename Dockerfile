# syntax=docker/dockerfile:1
# certbotk8s image: wheels are built in a builder stage, the final stage installs only those
# wheels (no compiler, no pip cache, no source tree) and runs as a non-root user.
# scripts/check-image-install runs the same install steps in a clean virtual environment.

ARG PYTHON_IMAGE=python:3.11-slim
# Extras of the DNS providers baked in (comma separated; route53 brings boto3). Build with
# --build-arg EXTRAS= for an image without them.
ARG EXTRAS=route53

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# certbotk8s and every dependency as wheels (all have wheels or are pure Python).
RUN pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/*.whl \
    && groupadd --system --gid 65532 certbotk8s \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin certbotk8s
USER 65532:65532
# 8089: HTTP-01 tokens (solver.http01.port); 9090: /healthz, /readyz, /metrics (controller).
EXPOSE 8089 9090
ENTRYPOINT ["certbotk8s"]
CMD ["controller"]
