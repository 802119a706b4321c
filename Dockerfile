# syntax=docker/dockerfile:1
# eventwire server image: multi-stage, slim, non-root, installed only from the
# hashed lock. Build:  docker build -t eventwire .
# Run:    docker run -p 50051:50051 -e EVENTWIRE_STORE=postgresql://... eventwire
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: resolve nothing, verify every file against requirements.lock -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY deploy/runtime_requirements.py deploy/
# The lock also pins the dev tools; only the server part (the package and its
# server extra) goes into the image, and hatchling (hashed too) only into a
# throwaway build venv.
RUN python deploy/runtime_requirements.py > /tmp/runtime.lock \
 && python deploy/runtime_requirements.py hatchling > /tmp/build.lock \
 && python -m venv /opt/eventwire \
 && /opt/eventwire/bin/pip install --require-hashes --no-deps -r /tmp/runtime.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r /tmp/build.lock
COPY src ./src
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/dist . \
 && /opt/eventwire/bin/pip install --no-deps "$(ls /tmp/dist/eventwire-*.whl)[server]" \
 && /opt/eventwire/bin/eventwire serve --help > /dev/null

# -- runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 eventwire \
 && useradd --system --uid 10001 --gid eventwire --no-create-home \
      --home-dir /var/lib/eventwire --shell /usr/sbin/nologin eventwire \
 && install --directory --owner eventwire --group eventwire /var/lib/eventwire
COPY --from=build /opt/eventwire /opt/eventwire
ENV PATH=/opt/eventwire/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EVENTWIRE_ADDRESS=0.0.0.0:50051 \
    EVENTWIRE_HTTP_ADDRESS=0.0.0.0:8080 \
    EVENTWIRE_METRICS_ADDRESS=0.0.0.0:9464 \
    EVENTWIRE_STORE=sqlite:////var/lib/eventwire/eventwire.db \
    EVENTWIRE_LOG_FORMAT=json
WORKDIR /var/lib/eventwire
VOLUME ["/var/lib/eventwire"]
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 8080 9464
# exec form: eventwire is PID 1 and gets SIGTERM itself, then drains.
ENTRYPOINT ["eventwire", "serve"]
