# One image for every process of the exporter: the worker (default), the HTTP API
# and dashboard (`api`) and the Heeros sandbox (`sandbox`).
#
#   docker build -t heeros-export .
#   docker run --rm heeros-export --help
#
# The base is pinned by version tag. To pin it by digest as well, look the digest
# up (`docker buildx imagetools inspect python:3.11.11-slim-bookworm`) and build
# with --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, each at the version and hash of the lock (`make lock`), in a
# layer of their own that a change to the code does not rebuild. Every dependency has
# a binary wheel, so no compiler is needed.
COPY requirements/runtime.txt ./requirements/
RUN python -m venv /opt/heeros \
    && /opt/heeros/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producer ./producer
COPY sandbox ./sandbox
RUN /opt/heeros/bin/pip install --no-deps . \
    && /opt/heeros/bin/pip check \
    && /opt/heeros/bin/heeros-export --help > /dev/null

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/heeros/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 heeros \
    && useradd --system --uid 10001 --gid heeros --home-dir /home/heeros --create-home \
       --shell /usr/sbin/nologin heeros
COPY --from=build /opt/heeros /opt/heeros
# Numeric, so that Kubernetes can enforce runAsNonRoot.
USER 10001:10001
WORKDIR /home/heeros
# 8000: the HTTP API and dashboard; 8089: the sandbox.
EXPOSE 8000 8089
ENTRYPOINT ["heeros-export"]
CMD ["worker"]
