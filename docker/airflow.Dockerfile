# Airflow image with mlops-ops: the official apache/airflow image plus this package (all extras), Java 17 for
# Spark, and this repository's dags/, plugins/ and great_expectations/ baked in.
#
#   docker build -f docker/airflow.Dockerfile -t mlops-ops-airflow:0.1.0 .
#
# AIRFLOW_VERSION must be the apache-airflow version pinned in constraints.txt (tests/unit/test_deploy_files.py
# checks it). torch comes from TORCH_INDEX (the CPU wheel by default: training on GPUs runs in the trainer image).
# Not built in CI: no Docker engine runs on this project's machines (see docker/README.md).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/java-17
ENV JAVA_HOME=/usr/lib/jvm/java-17

USER airflow
RUN mkdir -p /opt/airflow/state
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/mlops-ops/
COPY --chown=airflow:0 mlops_ops /opt/mlops-ops/mlops_ops
RUN pip install --no-cache-dir -c /opt/mlops-ops/constraints.txt --extra-index-url "${TORCH_INDEX}" \
      "apache-airflow==${AIRFLOW_VERSION}" "/opt/mlops-ops[all]"
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 great_expectations /opt/airflow/great_expectations
ENV MLOPS_OPS_GX_ROOT=/opt/airflow/great_expectations \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
