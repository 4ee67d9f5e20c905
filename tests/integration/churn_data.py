"""Churn-like CSV batches landed in the lake through the real S3 ingest, for preprocessing and gate tests."""

from __future__ import annotations

import math
import random
import uuid
from typing import Any

from mlops_ops.lake import batches, transaction
from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
from mlops_ops.lake.tables import PipelineTables
from mlops_ops.stack.services import s3_client

SCHEMA = {"customer_id": "string", "tenure_months": "int", "monthly_charges": "float", "total_charges": "float",
          "contract": "string", "support_calls": "int", "churned": "bool"}  # fmt: skip
COLUMNS = list(SCHEMA)


def clean_rows(n: int, *, seed: int = 7, start: int = 0) -> list[dict[str, Any]]:
    """Churn rows whose label depends on tenure and support calls (so a model has something to learn)."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        tenure = rng.randint(0, 72)
        monthly = round(rng.uniform(18, 120), 2)
        calls = rng.randint(0, 9)
        risk = 1 / (1 + math.exp(-(-0.5 - 0.06 * tenure + 0.45 * calls)))
        rows.append({"customer_id": f"c{i:07d}", "tenure_months": tenure, "monthly_charges": monthly,
                     "total_charges": round(monthly * max(tenure, 1), 2),
                     "contract": rng.choice(["month-to-month", "one-year", "two-year"]),
                     "support_calls": calls, "churned": rng.random() < risk})  # fmt: skip
    return rows


def to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    columns = columns or COLUMNS

    def cell(v: Any) -> str:
        return "" if v is None else ("true" if v is True else "false" if v is False else str(v))

    return (",".join(columns) + "\n" + "".join(",".join(cell(r.get(c)) for c in columns) + "\n" for r in rows)).encode()


def land_batch(stack: Any, tables: PipelineTables, body: bytes, *, schema: dict[str, str] | None = None,
               publish: bool = True) -> transaction.StagedBatch:  # fmt: skip
    """Upload one CSV object and ingest it into ``<pipeline>.raw``: staged (for a gate to audit) or published.

    ``schema={}`` ingests without a schema (types inferred by Arrow)."""
    client = s3_client(stack.settings)
    bucket = f"churn-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="in/batch.csv", Body=body)
    settings = S3BatchSettings(
        bucket=bucket, prefix="in/", format="csv", schema=SCHEMA if schema is None else schema or None
    )
    result = S3BatchIngest(client, tables, settings).run()
    assert result.staged is not None and not result.dead, result
    if publish:
        batches.publish(tables, tables.load("raw"), result.staged)
    return result.staged


def churn_feature_table(stack: Any, tables: PipelineTables, rows: int = 2_000) -> str:
    """Land ``rows`` clean churn rows in ``<pipeline>.raw``, build features with Spark; the snapshot reference."""
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.features import FeatureBuild, build_features

    land_batch(stack, tables, to_csv(clean_rows(rows)))
    spark = SparkHook(app_name="mlops-ops-tests").get_conn()
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    return build_features(spark, tables, build).ref


KAFKA_PIPELINE = """
pipeline: {pipeline}
schedule: null
source:
  kafka:
    topics: [{topic}]
    schema: {schema}
    poll_timeout_s: 2
quality:
  suite: churn_raw
preprocess:
  transform: tests.integration.feature_transforms:churn_features
  key_column: customer_id
train:
  task: binary
  target: churned
{train}
evaluate:
  metrics: [roc_auc, accuracy]
  beat_baseline: false
promote:
  model_name: {model}
drift:
  schedule: null
"""


def kafka_pipeline_spec(pipeline: str, topic: str, model: str, train: str) -> str:
    """A churn pipeline from a Kafka topic: manual ingest, training on each published batch; ``train``: the rest of
    the ``train`` section (indented YAML lines)."""
    import json

    return KAFKA_PIPELINE.format(pipeline=pipeline, topic=topic, model=model, schema=json.dumps(SCHEMA), train=train)


def pipeline_services(stack: Any, root: Any, pipeline: str, spec: str) -> Any:
    """Airflow's scheduler, DAG processor, triggerer and API server (LocalExecutor, a new database on the stack's
    PostgreSQL) over a DAG folder holding one spec; not started."""
    from mlops_ops.testing.airflow_services import AirflowServices
    from mlops_ops.testing.runner import LOADER
    from tests.conftest import ROOT
    from tests.integration.conftest import fresh_database

    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    (dags / "pipelines" / f"{pipeline}.yaml").write_text(spec)
    (dags / "pipelines_dag.py").write_text(LOADER)
    env = stack.environment()
    extra = {"MLOPS_OPS_GX_ROOT": str(ROOT / "great_expectations")}
    return AirflowServices(root / "airflow", dags, env, extra_env=extra, python_path=[ROOT],
                           database_url=fresh_database(stack), migrate=False)  # fmt: skip
