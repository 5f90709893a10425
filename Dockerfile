# syntax=docker/dockerfile:1
# meisa-bridge image: a wheel built in a throwaway stage, installed into a venv that the slim
# runtime stage copies. Runtime dependencies only (confluent-kafka's manylinux wheel bundles
# librdkafka, so no compiler or system library is needed at run time).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
LABEL dev.meisa-bridge.stage=builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first, from pyproject.toml alone: a change to bridge/ reuses this layer.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt
COPY bridge ./bridge
# The root filesystem is read-only at run time, so Python could never cache bytecode there:
# compile it here, hash-based so the files' mtimes after COPY do not matter.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-compile --no-deps /wheels/*.whl \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="meisa-bridge" \
      org.opencontainers.image.description="Drive Meisa lifecycle email from the events you publish to Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/meisa/meisa-bridge"
# No .pyc writes (the root filesystem may be read-only); unbuffered logs; the venv first on PATH.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    TMPDIR=/tmp
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin bridge \
 && mkdir -p /etc/meisa-bridge
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 9400
# Liveness from inside the image (compose, plain docker); Kubernetes uses its own probes. The port
# follows BRIDGE_HTTP_PORT, which the example config reads for server.port (default 9400).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BRIDGE_HTTP_PORT', '9400'), timeout=2)"]
ENTRYPOINT ["meisa-bridge"]
CMD ["run", "--config", "/etc/meisa-bridge/bridge.yaml"]
