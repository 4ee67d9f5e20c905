# Trainer image: runs `python -m mlops_ops.training` for the docker and kubernetes executors.
#
#   CPU:  docker build -f docker/trainer.Dockerfile -t mlops-ops-trainer:0.1.0 .
#   CUDA: docker build -f docker/trainer.Dockerfile --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#           --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t mlops-ops-trainer:0.1.0-cuda .
#
# Installs from the same constraints.txt as the project (torch is taken from TORCH_INDEX when given, so the CUDA
# build replaces the CPU wheel pinned there). Not built in CI: no Docker engine runs on these machines.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 AIRFLOW_HOME=/tmp/airflow
RUN if ! command -v python3.11 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
      && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3.11 /usr/local/bin/python; fi
WORKDIR /opt/mlops-ops
COPY pyproject.toml constraints.txt README.md ./
COPY mlops_ops ./mlops_ops
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip==25.3 \
 && if [ -n "$TORCH_INDEX" ]; then /opt/venv/bin/pip install torch --index-url "$TORCH_INDEX"; \
      grep -v '^torch==' constraints.txt > /tmp/constraints.txt; else cp constraints.txt /tmp/constraints.txt; fi \
 && /opt/venv/bin/pip install -c /tmp/constraints.txt ".[s3,mlflow,torch]"
ENV PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 50000 trainer
USER trainer
ENTRYPOINT []
CMD ["python", "-m", "mlops_ops.training", "--help"]
