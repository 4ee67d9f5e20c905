# Airflow image with mlops-ops: Airflow + this package (all extras, from constraints.txt) + Java 17 for Spark +
# this repository's dags/, plugins/ and great_expectations/.
#
#   docker/build.sh airflow mlops-ops-airflow:0.1.0                          # BASE: the official apache/airflow image
#   docker/build.sh airflow mlops-ops-airflow:0.1.0 mlops-ops-base:bookworm  # a plain Debian 12 (docker/base-image.sh)
#
# On the official base, Airflow is already there (pip installs beside it, as its docs say); on a plain Debian base the
# same layout is made first (user airflow, uid 50000, a venv in its home). AIRFLOW_VERSION must be the apache-airflow
# version of constraints.txt (tests/unit/test_deploy_files.py checks it). torch: the CPU build (TORCH_INDEX, or a
# local wheel in docker/wheels); training on GPUs runs in the trainer image.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
ARG BASE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
FROM ${BASE}
ARG AIRFLOW_VERSION
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sfn "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/java-17 \
 && if ! id airflow >/dev/null 2>&1; then \
      useradd --create-home --uid 50000 --gid 0 airflow && python3 -m venv /home/airflow/venv \
      && mkdir -p /opt/airflow && chown -R airflow:0 /home/airflow /opt/airflow; fi
ENV JAVA_HOME=/usr/lib/jvm/java-17 AIRFLOW_HOME=/opt/airflow PATH=/home/airflow/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

USER airflow
RUN mkdir -p /opt/airflow/state
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/mlops-ops/
COPY --chown=airflow:0 docker/certs /opt/mlops-ops/docker/certs
COPY --chown=airflow:0 docker/wheels /opt/mlops-ops/docker/wheels
COPY --chown=airflow:0 docker/requirements.py /opt/mlops-ops/docker/requirements.py
# dependencies first (a layer that changes only with pyproject.toml / constraints.txt: the engine's cache keeps it
# while only the code changes), the package after with --no-deps
RUN set -e; cd /opt/mlops-ops; if [ -f docker/certs/host-ca.crt ]; then export PIP_CERT=$PWD/docker/certs/host-ca.crt; fi; \
    pip install -q "pip==25.3"; \
    python docker/requirements.py pyproject.toml all > /tmp/requirements.txt; \
    pip install -q -c constraints.txt --find-links docker/wheels ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
      "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.txt; \
    rm -rf docker/wheels/*.whl /tmp/requirements.txt
COPY --chown=airflow:0 mlops_ops /opt/mlops-ops/mlops_ops
RUN set -e; cd /opt/mlops-ops; if [ -f docker/certs/host-ca.crt ]; then export PIP_CERT=$PWD/docker/certs/host-ca.crt; fi; \
    pip install -q --no-deps /opt/mlops-ops
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 great_expectations /opt/airflow/great_expectations
ENV MLOPS_OPS_GX_ROOT=/opt/airflow/great_expectations \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
