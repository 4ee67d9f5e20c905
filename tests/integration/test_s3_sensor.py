"""The deferrable new-objects sensor and its trigger, against the embedded S3, and an S3 pipeline DAG run."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from mlops_ops.spec_loader import parse_spec
from mlops_ops.stack.services import s3_client
from mlops_ops.triggers.s3 import NewS3ObjectsTrigger


@pytest.fixture
def bucket(stack) -> str:  # type: ignore[no-untyped-def]
    name = f"land-{uuid.uuid4().hex[:8]}"
    s3_client(stack.settings).create_bucket(Bucket=name)
    return name


def test_trigger_fires_when_an_object_lands(stack, bucket: str) -> None:  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    trigger = NewS3ObjectsTrigger(poll_interval=0.3, bucket=bucket, prefix="in/", glob="*.csv", on_change="reingest",
                                  lake="s3://mlops-lake/trig", pipeline=f"t{uuid.uuid4().hex[:6]}", dataset="raw",
                                  aws_conn_id="aws_default")  # fmt: skip
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_ops.triggers.s3.NewS3ObjectsTrigger" and kwargs["bucket"] == bucket

    async def first_event():  # type: ignore[no-untyped-def]
        async for event in trigger.run():
            return event.payload
        return None

    def land() -> None:
        time.sleep(1.5)
        client.put_object(Bucket=bucket, Key="in/ignored.txt", Body=b"x")
        client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"id\n1\n")

    threading.Thread(target=land).start()
    started = time.monotonic()
    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    assert payload == {"status": "new", "keys": ["in/a.csv"], "count": 1}
    assert time.monotonic() - started >= 1.4


def test_s3_pipeline_waits_deferred_then_ingests(stack, bucket: str, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    lake = f"s3://mlops-lake/it-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_VAR_MLOPS_OPS_LAKE", lake)
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_pipelines.py", dags)
    name = f"s3p{uuid.uuid4().hex[:6]}"
    (dags / "pipelines" / f"{name}.yaml").write_text(
        f"source: {{s3: {{bucket: {bucket}, prefix: in/, glob: '*.csv', format: csv, wait_for_new_s: 120,"
        " schema: {id: string, v: float}}}\n"
    )
    import airflow.settings

    # dag.test() runs DAGs of the configured bundle: point the local bundle at this folder
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    dag = DagBag(dag_folder=str(dags)).dags[f"{name}__training"]
    assert parse_spec  # the spec is parsed by the loader from the file above
    dag.get_task("wait_for_s3_objects").poll_interval = 0.5  # type: ignore[attr-defined]
    client = s3_client(stack.settings)

    def land() -> None:
        time.sleep(4)
        client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"id,v\na,1.5\nb,2\n")

    threading.Thread(target=land).start()
    run = dag.test()
    states = {t.task_id: t.state for t in run.get_task_instances()}
    assert states == {"wait_for_s3_objects": "success", "ingest_s3": "success"}
    result = next(t for t in run.get_task_instances() if t.task_id == "ingest_s3").xcom_pull(task_ids="ingest_s3")
    assert result["rows"] == 2 and result["objects"] == 1 and result["quarantined"] == 0
