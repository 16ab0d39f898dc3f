# attnserve container image.
#
#   CPU (default):  docker build -t attnserve:0.1.0-cpu .
#   CUDA:           docker build --build-arg VARIANT=cuda -t attnserve:0.1.0-cuda .
#                   (CUDA wheel index chosen by CUDA_TAG, default cu128)
#
# The project is installed from pyproject.toml alone (`pip install .`); the
# built-in default model is package data (model/default/) and ships inside the
# installed package. Other models are mounted at /models and named by
# ATTNSERVE_MODEL, e.g. ATTNSERVE_MODEL=/models/my-model.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
# builder: a virtual environment with torch (CPU or CUDA wheel) and attnserve
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# cpu | cuda
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
# PyTorch wheel index suffix for the CUDA variant (cu126, cu128, cu130, ...)
ARG CUDA_TAG=cu128
# Overrides the PyTorch index entirely (a mirror), if set.
ARG TORCH_INDEX_URL=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, in its own layer: it is by far the largest and changes least.
RUN case "${VARIANT}" in \
        cpu)  index="https://download.pytorch.org/whl/cpu" ;; \
        cuda) index="https://download.pytorch.org/whl/${CUDA_TAG}" ;; \
        *)    echo "VARIANT must be 'cpu' or 'cuda', got '${VARIANT}'" >&2; exit 1 ;; \
    esac \
 && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL:-$index}" "torch==${TORCH_VERSION}" \
 && echo "torch==${TORCH_VERSION}" > /opt/venv/torch-constraint.txt

WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY app/ app/
# The constraint keeps the torch wheel chosen above (PyPI would bring another).
RUN pip install --no-cache-dir --constraint /opt/venv/torch-constraint.txt . \
 && python -c "import app, model, torch; print('attnserve built with torch', torch.__version__)"

# ---------------------------------------------------------------------------
# runtime: the virtual environment only, run as an unprivileged user
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VARIANT=cpu
LABEL org.opencontainers.image.title="attnserve" \
      org.opencontainers.image.description="HTTP transformer-serving microservice (TGI/TEI-compatible)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0" \
      io.attnserve.variant="${VARIANT}"

# libgomp1: numba's OpenMP threading layer for the CPU decode-attention kernel (torch bundles a
# private copy; without it numba falls back to its slower workqueue threads).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# uid/gid 10001 is what deploy/k8s runs as (runAsUser/runAsGroup/fsGroup).
RUN groupadd --gid 10001 attnserve \
 && useradd --uid 10001 --gid 10001 --home-dir /home/attnserve --create-home \
        --shell /usr/sbin/nologin attnserve \
 && mkdir -p /models /home/attnserve/.cache \
 && chown 10001:10001 /home/attnserve/.cache

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/attnserve \
    XDG_CACHE_HOME=/home/attnserve/.cache \
    TRITON_CACHE_DIR=/home/attnserve/.cache/triton \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    ATTNSERVE_HOST=0.0.0.0 \
    ATTNSERVE_PORT=8000

USER 10001:10001
WORKDIR /home/attnserve
EXPOSE 8000
STOPSIGNAL SIGTERM

# python:*-slim has no curl: probe /health with the standard library.
# urlopen raises on any non-2xx (503 while loading or draining) -> exit 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ATTNSERVE_PORT', '8000'), timeout=4)"]

# Exec form: the server is PID 1 and receives SIGTERM itself (graceful drain).
# Extra flags go after the image name: docker run IMAGE --model /models/x
ENTRYPOINT ["python", "-m", "app"]
CMD []
