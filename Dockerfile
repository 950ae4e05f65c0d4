# Image of the agentic operator: a Python virtual environment with the operator and its
# dependencies (with the otlp extra), run as an unprivileged user. Build from the repository root
# (BuildKit), or with `make docker-build IMG=...`:
#
#   docker build -t quay.io/ambient_code/agentic-operator:v0.1.0 .
#
# The base image is pinned by its full version tag. For reproducible releases, pin it by digest
# as well (python:3.11.10-slim-bookworm@sha256:...), resolved with `docker buildx imagetools
# inspect python:3.11.10-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---------------------------------------------------------------------------------------------
# build: wheels of the operator and of every dependency.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the package build reads (see .dockerignore), so source edits elsewhere keep the
# cache.
COPY pyproject.toml README.md LICENSE ./
COPY controller ./controller
# With the otlp extra: traces can be exported (OTEL_TRACES_EXPORTER=otlp) without rebuilding.
RUN pip wheel --wheel-dir /wheels '.[otlp]'

# ---------------------------------------------------------------------------------------------
# final: the wheels installed into /opt/venv, offline; no compiler, no build files, no cache.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
COPY LICENSE /licenses/LICENSE
LABEL org.opencontainers.image.title="agentic-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs AgenticSession resources as runner Jobs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The wheels are bind-mounted from the build stage, so they never become a layer of this image.
# pip is removed from the venv afterwards: nothing installs at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links=/wheels 'agentic-operator[otlp]' \
 && /opt/venv/bin/pip uninstall --yes pip

# /app/operator answers the platform's command lines unchanged: `./operator session-trigger`
# (scheduled sessions' CronJobs) and `./operator run ...`.
COPY --chmod=0755 image/operator /app/operator

# A numeric user, so that `runAsNonRoot: true` can be checked without an /etc/passwd entry. The
# manifests pin no UID: on OpenShift the restricted SCC assigns one from the namespace's range
# (group 0), elsewhere this one applies. Nothing needs to be owned by it: the root filesystem can
# be mounted read-only, and only /tmp (an emptyDir) is written.
USER 65532:65532
WORKDIR /app

ENTRYPOINT ["agentic-operator"]
CMD ["run"]
