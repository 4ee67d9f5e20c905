"""A hand-written TaskFlow DAG that uses the mlops-ops operators directly, without a YAML spec.

Ingests the ``churn-events`` topic into the Iceberg table ``example_taskflow.raw`` and reports what the
published snapshot holds, reading its summary (small metadata) rather than passing data through XCom.
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
        outlets=[CHURN_EVENTS],
    )

    @task
    def summarize(result: dict) -> dict:
        """Read the snapshot the ingest task published: rows, dead letters, offsets."""
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.lake.transaction import summary_of

        raw = IcebergCatalogHook().get_conn().load_table(result["table"])
        summary = summary_of(raw.snapshot_by_id(result["snapshot_id"]))
        print(f"{summary['mlops.rows']} rows, {summary['mlops.bad']} dead letters; offsets "
              f"{summary['mlops.kafka.range']}")  # fmt: skip
        return {"rows": int(summary["mlops.rows"]), "snapshot_id": result["snapshot_id"]}

    summarize(ingest.output)


example_taskflow_ingest()
