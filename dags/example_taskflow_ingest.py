"""A hand-written TaskFlow DAG that uses the mlops-ops operators directly, without a YAML spec.

Ingests the ``churn-events`` topic into its own lake dataset and reports what landed,
reading the manifest (small metadata) rather than passing data through XCom.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, dag, task

from mlops_ops.operators.kafka import KafkaToLakeOperator

CHURN_EVENTS = Asset(name="mlops_ops.example_taskflow.events")


@dag(
    dag_id="example_taskflow_ingest",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["mlops-ops", "example"],
    doc_md=__doc__,
)
def example_taskflow_ingest() -> None:
    ingest = KafkaToLakeOperator(
        task_id="ingest_events",
        topics=["churn-events"],
        pipeline="example_taskflow",
        dataset="events",
        outlets=[CHURN_EVENTS],
    )

    @task
    def summarize(result: dict) -> dict:
        """Read the manifest the ingest task published and report files and offsets."""
        import json

        from mlops_ops.lake.store import lake_path

        manifest_path = lake_path(result["manifest_uri"], conn_id="aws_default")
        manifest = json.loads(manifest_path.read_bytes())
        files = manifest["files"]
        print(f"{manifest['rows']} rows in {len(files)} file(s); offsets {manifest['offsets']}")
        return {"rows": manifest["rows"], "files": len(files)}

    summarize(ingest.output)


example_taskflow_ingest()
