# Trainer image: runs `python -m mlops_ops.training` for the docker and kubernetes executors. No Airflow inside:
# it installs the `trainer` extra's list from pyproject.toml, then mlops-ops itself with --no-deps.
#
#   docker/build.sh trainer mlops-ops-trainer:0.1.0                    # BASE: python:3.11-slim
#   docker/build.sh trainer mlops-ops-trainer:0.1.0 mlops-ops-base:bookworm   # made by docker/base-image.sh
#   CUDA: TORCH_INDEX=https://download.pytorch.org/whl/cu128 docker/build.sh trainer mlops-ops-trainer:0.1.0-cuda \
#           nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04   (a base with python3.11 and python3.11-venv)
#
# Versions come from constraints.txt; torch from TORCH_INDEX when given (the CUDA build replaces the pinned CPU wheel),
# else from docker/wheels (local wheels) or PyPI.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/opt/mlops-ops/docker/wheels
WORKDIR /opt/mlops-ops
COPY pyproject.toml constraints.txt README.md ./
COPY docker/certs docker/certs
COPY docker/wheels docker/wheels
# dependencies first (a layer that changes only with pyproject.toml / constraints.txt), the package after
RUN set -e; if [ -f docker/certs/host-ca.crt ]; then export PIP_CERT=/opt/mlops-ops/docker/certs/host-ca.crt; fi; \
    PY=$(command -v python3.11 || command -v python3); "$PY" -m venv /opt/venv; \
    /opt/venv/bin/pip install -q pip==25.3; \
    /opt/venv/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['trainer']))" > /tmp/trainer.txt; \
    cp constraints.txt /tmp/constraints.txt; \
    if [ -n "$TORCH_INDEX" ]; then /opt/venv/bin/pip install -q torch --index-url "$TORCH_INDEX"; grep -v '^torch==' constraints.txt > /tmp/constraints.txt; fi; \
    /opt/venv/bin/pip install -q -c /tmp/constraints.txt -r /tmp/trainer.txt; \
    rm -rf docker/wheels/*.whl /tmp/trainer.txt /tmp/constraints.txt
COPY mlops_ops ./mlops_ops
RUN if [ -f docker/certs/host-ca.crt ]; then export PIP_CERT=/opt/mlops-ops/docker/certs/host-ca.crt; fi; \
    /opt/venv/bin/pip install -q --no-deps .
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp
RUN useradd --create-home --uid 50000 trainer && python -m mlops_ops.training --help >/dev/null
USER trainer
ENTRYPOINT []
CMD ["python", "-m", "mlops_ops.training", "--help"]
