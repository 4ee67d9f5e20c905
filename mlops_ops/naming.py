"""Every name the library gives things: DAG ids, Asset names, task ids, XCom keys, plugin routes.

The factory, the operators, the UI and the CLI import names from here; nothing imports from
``mlops_ops.factories`` to learn a name. No imports beyond the standard library: DAG files parse this.
"""

from __future__ import annotations

ASSET_GROUP = "mlops-ops"

# ------------------------------------------------------------------ DAG ids
INGEST_SUFFIX = "__ingest"
TRAINING_SUFFIX = "__training"
DRIFT_SUFFIX = "__drift"
DAG_SUFFIXES = (INGEST_SUFFIX, TRAINING_SUFFIX, DRIFT_SUFFIX)


def ingest_dag_id(pipeline: str) -> str:
    """The only writer of ``<pipeline>.raw``."""
    return pipeline + INGEST_SUFFIX


def training_dag_id(pipeline: str) -> str:
    return pipeline + TRAINING_SUFFIX


def drift_dag_id(pipeline: str) -> str:
    return pipeline + DRIFT_SUFFIX


def pipeline_of_dag_id(dag_id: str) -> str | None:
    """The pipeline a factory-built DAG id belongs to, or ``None`` for other DAGs."""
    for suffix in DAG_SUFFIXES:
        if dag_id.endswith(suffix):
            return dag_id[: -len(suffix)]
    return None


# ------------------------------------------------------------------ Assets
def raw_asset_name(pipeline: str) -> str:
    """Updated each time a batch is published to ``<pipeline>.raw``: the training DAG runs on it."""
    return f"mlops_ops.{pipeline}.raw"


def features_asset_name(pipeline: str) -> str:
    return f"mlops_ops.{pipeline}.features"


def model_asset_name(pipeline: str) -> str:
    return f"mlops_ops.{pipeline}.model"


def drift_asset_name(pipeline: str) -> str:
    """Updated when a drift check finds drift (and the cool-down has passed): the training DAG runs on it."""
    return f"mlops_ops.{pipeline}.drift"


def control_asset_name(pipeline: str) -> str:
    """Updated by the watcher of the Kafka control topic for each retraining request."""
    return f"mlops_ops.{pipeline}.retrain_request"


def source_asset_name(pipeline: str, source: str) -> str:
    """Updated by the watcher of a source (new messages on the topic, new objects under the prefix)."""
    return f"mlops_ops.{pipeline}.{source}_arrivals"


# ------------------------------------------------------------------ task ids
INGEST_KAFKA_TASK = "ingest_kafka"
INGEST_S3_TASK = "ingest_s3"
QUALITY_GATE_TASK = "quality_gate"
PREPROCESS_TASK = "preprocess"
TRAIN_TASK = "train"
EVALUATE_TASK = "evaluate"
APPROVE_TASK = "approve"
PROMOTE_TASK = "promote"
DRIFT_CHECK_TASK = "drift_check"
DRIFT_SIGNAL_TASK = "drift_signal"

# ------------------------------------------------------------------ XCom keys
QUALITY_XCOM_KEY = "quality"
DOCS_XCOM_KEY = "data_docs_url"
TRAIN_PARAMS_KEY = "train_params"  # DAG Param of training DAGs: hyper-parameters overriding the spec's
REPLAY_PARAM = "replay_of"  # DAG Param of training DAGs: MODEL@VERSION to train again from what it recorded

# ------------------------------------------------------------------ plugin routes
PLUGIN_PREFIX = "/mlops-ops"
DOCS_ROUTE = PLUGIN_PREFIX + "/data-docs"
REPORTS_ROUTE = PLUGIN_PREFIX + "/drift-reports"
LAKE_ROUTE = PLUGIN_PREFIX + "/lake"
PIPELINES_ROUTE = PLUGIN_PREFIX + "/pipelines"


def snapshot_route(pipeline: str, table: str, snapshot_id: int | str) -> str:
    """The plugin page of one snapshot of a lake table (summary, files added)."""
    return f"{LAKE_ROUTE}/{pipeline}/{table}/{snapshot_id}"


def safe_link(url: object) -> str:
    """``url`` when it is an http(s) URL or a same-origin path (``/...``, not ``//host``), else ``""``.

    Links shown in the UI come from XCom, connections and the lake: a ``javascript:`` or ``data:`` URL there must
    never become a clickable link."""
    text = str(url or "").strip()
    if any(ch in text for ch in "\x00\r\n\t\\") or not text:
        return ""
    lowered = text.lower()
    if lowered.startswith(("https://", "http://")) or (text.startswith("/") and not text.startswith("//")):
        return text
    return ""
