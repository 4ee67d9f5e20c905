"""S3 -> lake against the embedded SeaweedFS: new, changed and corrupt objects."""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.lake.catalog import committed_files
from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
from mlops_ops.lake.store import Dataset, lake_path
from mlops_ops.stack.services import s3_client

SCHEMA = {"id": "string", "amount": "float", "n": "int"}


@pytest.fixture
def source(stack):  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _csv(rows: range, tag: str = "") -> bytes:
    return ("id,amount,n,extra\n" + "".join(f"{tag}r{i},{i / 4},{i},x\n" for i in rows)).encode()


def _run(client, bucket: str, dataset: Dataset, **kw):  # type: ignore[no-untyped-def]
    settings = S3BatchSettings(bucket=bucket, prefix="in/", **{"format": "csv", "schema": SCHEMA, **kw})
    return S3BatchIngest(client, lake_path(f"s3://{bucket}", "aws_default"), dataset, settings).run()


def _rows(dataset: Dataset) -> list[dict]:
    rows: list[dict] = []
    for entry in committed_files(dataset):
        with lake_path(entry["uri"], "aws_default").open("rb") as fh:
            rows += pq.read_table(fh).to_pylist()
    return rows


def _dataset() -> Dataset:
    return Dataset.at("s3://mlops-lake/tests", f"s{uuid.uuid4().hex[:8]}", "raw", conn_id="aws_default")


def test_new_objects_are_ingested_once(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(0, 100)))
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=_csv(range(100, 250)))
    client.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"not matched by the glob")
    client.put_object(Bucket=bucket, Key="other/c.csv", Body=_csv(range(5)))
    dataset = _dataset()
    first = _run(client, bucket, dataset, glob="*.csv")
    assert (first.rows, first.objects) == (250, ["in/a.csv", "in/b.csv"])
    assert _run(client, bucket, dataset, glob="*.csv").manifest_uri is None  # nothing new
    client.put_object(Bucket=bucket, Key="in/d.csv", Body=_csv(range(250, 260)))
    third = _run(client, bucket, dataset, glob="*.csv")
    assert (third.rows, third.objects) == (10, ["in/d.csv"])
    rows = _rows(dataset)
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(260))
    assert set(rows[0]) == {"id", "amount", "n"}  # cast to the schema, other columns dropped
    assert isinstance(rows[0]["n"], int) and isinstance(rows[0]["amount"], float)


def test_changed_object_replaces_its_rows_or_is_ignored(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(10)))
    dataset = _dataset()
    _run(client, bucket, dataset)
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(20), tag="v2-"))
    ignored = _dataset()
    _run(client, bucket, ignored)
    assert _run(client, bucket, ignored, on_change="ignore").manifest_uri is None
    assert _run(client, bucket, dataset).rows == 20
    assert sorted(r["id"] for r in _rows(dataset)) == sorted(f"v2-r{i}" for i in range(20))
    assert len(_rows(ignored)) == 20  # ingested once (after the change), then the change policy held


def test_corrupt_objects_are_quarantined_and_others_proceed(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/good.csv", Body=_csv(range(30)))
    client.put_object(Bucket=bucket, Key="in/bad-type.csv", Body=b"id,amount,n\nr1,lots,1\n")
    client.put_object(Bucket=bucket, Key="in/missing.csv", Body=b"id,n\nr1,1\n")
    dataset = _dataset()
    result = _run(client, bucket, dataset)
    assert (result.rows, result.objects) == (30, ["in/good.csv"])
    reasons = {q["key"]: q["reason"] for q in result.quarantined}
    assert set(reasons) == {"in/bad-type.csv", "in/missing.csv"}
    assert "(column 'amount')" in reasons["in/bad-type.csv"] and "'lots'" in reasons["in/bad-type.csv"]
    assert "missing column(s) amount" in reasons["in/missing.csv"]
    # quarantined objects are not retried until they change
    assert _run(client, bucket, dataset).manifest_uri is None
    client.put_object(Bucket=bucket, Key="in/missing.csv", Body=_csv(range(500, 505)))
    assert _run(client, bucket, dataset).rows == 5


def test_parquet_and_jsonl_objects(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    table = pa.table({"id": [f"p{i}" for i in range(1000)], "amount": [i * 1.5 for i in range(1000)],
                      "n": list(range(1000))})  # fmt: skip
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=300)
    client.put_object(Bucket=bucket, Key="in/t.parquet", Body=buf.getvalue())
    client.put_object(Bucket=bucket, Key="in/broken.parquet", Body=b"PAR1 definitely not parquet")
    dataset = _dataset()
    result = _run(client, bucket, dataset, format="parquet")
    assert result.rows == 1000 and [q["key"] for q in result.quarantined] == ["in/broken.parquet"]
    lines = "".join(json.dumps({"id": f"j{i}", "amount": i, "n": i}) + "\n" for i in range(50)).encode()
    client.put_object(Bucket=bucket, Key="in/j.jsonl", Body=lines)
    jsonl = _dataset()
    assert _run(client, bucket, jsonl, format="jsonl").rows == 50
    assert sorted(r["n"] for r in _rows(jsonl)) == list(range(50))
