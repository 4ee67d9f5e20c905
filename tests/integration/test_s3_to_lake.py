"""S3 -> ``<pipeline>.raw`` (Iceberg) against the embedded SeaweedFS: new, changed, corrupt objects, S3 faults."""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.lake import batches
from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
from mlops_ops.lake.tables import PipelineTables
from mlops_ops.stack.services import s3_client
from tests.integration.lake_helpers import committed_rows, new_tables

SCHEMA = {"id": "string", "amount": "float", "n": "int"}


@pytest.fixture
def source(stack):  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _csv(rows: range, tag: str = "") -> bytes:
    return ("id,amount,n,extra\n" + "".join(f"{tag}r{i},{i / 4},{i},x\n" for i in rows)).encode()


def _run(client, bucket: str, tables: PipelineTables, **kw):  # type: ignore[no-untyped-def]
    settings = S3BatchSettings(bucket=bucket, prefix="in/", **{"format": "csv", "schema": SCHEMA, **kw})
    result = S3BatchIngest(client, tables, settings).run()
    if result.staged is not None:
        batches.publish(tables, tables.load("raw"), result.staged)
    return result


def _rows(tables: PipelineTables) -> list[dict]:
    return committed_rows(tables)


def _dataset() -> PipelineTables:
    return new_tables("s")


def test_new_objects_are_ingested_once(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(0, 100)))
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=_csv(range(100, 250)))
    client.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"not matched by the glob")
    client.put_object(Bucket=bucket, Key="other/c.csv", Body=_csv(range(5)))
    dataset = _dataset()
    first = _run(client, bucket, dataset, glob="*.csv")
    assert (first.rows, first.objects) == (250, ["in/a.csv", "in/b.csv"])
    assert _run(client, bucket, dataset, glob="*.csv").staged is None  # nothing new
    client.put_object(Bucket=bucket, Key="in/d.csv", Body=_csv(range(250, 260)))
    third = _run(client, bucket, dataset, glob="*.csv")
    assert (third.rows, third.objects) == (10, ["in/d.csv"])
    rows = _rows(dataset)
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(260))
    assert {"id", "amount", "n"} <= set(rows[0]) and "extra" not in rows[0]  # cast to the schema, others dropped
    assert isinstance(rows[0]["n"], int) and isinstance(rows[0]["amount"], float)
    assert {(r["_object_key"], r["_source"]) for r in rows} >= {("in/a.csv", "s3")} and rows[0]["_object_etag"]


def test_changed_object_replaces_its_rows_or_is_ignored(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(10)))
    dataset = _dataset()
    _run(client, bucket, dataset)
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(20), tag="v2-"))
    ignored = _dataset()
    _run(client, bucket, ignored)
    assert _run(client, bucket, ignored, on_change="ignore").staged is None
    assert _run(client, bucket, dataset).rows == 20
    assert sorted(r["id"] for r in _rows(dataset)) == sorted(f"v2-r{i}" for i in range(20))
    assert len(_rows(ignored)) == 20  # ingested once (after the change), then the change policy held


def test_corrupt_objects_are_dead_letters_and_others_proceed(source) -> None:  # type: ignore[no-untyped-def]
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/good.csv", Body=_csv(range(30)))
    client.put_object(Bucket=bucket, Key="in/bad-type.csv", Body=b"id,amount,n\nr1,lots,1\n")
    client.put_object(Bucket=bucket, Key="in/missing.csv", Body=b"id,n\nr1,1\n")
    dataset = _dataset()
    result = _run(client, bucket, dataset)
    assert (result.rows, result.objects) == (30, ["in/good.csv"])
    reasons = {q["key"]: q["reason"] for q in result.dead}
    assert set(reasons) == {"in/bad-type.csv", "in/missing.csv"}
    assert "(column 'amount')" in reasons["in/bad-type.csv"] and "'lots'" in reasons["in/bad-type.csv"]
    assert "missing column(s) amount" in reasons["in/missing.csv"]
    dead = committed_rows(dataset, "raw_dead_letters")
    assert sorted(d["_object_key"] for d in dead) == ["in/bad-type.csv", "in/missing.csv"]
    # objects with unreadable content are not retried until they change
    assert _run(client, bucket, dataset).staged is None
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
    assert result.rows == 1000 and [q["key"] for q in result.dead] == ["in/broken.parquet"]
    lines = "".join(json.dumps({"id": f"j{i}", "amount": i, "n": i}) + "\n" for i in range(50)).encode()
    client.put_object(Bucket=bucket, Key="in/j.jsonl", Body=lines)
    jsonl = _dataset()
    assert _run(client, bucket, jsonl, format="jsonl").rows == 50
    assert sorted(r["n"] for r in _rows(jsonl)) == list(range(50))


def test_transient_s3_errors_are_retried_then_fail_with_nothing_recorded(source, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from botocore.exceptions import EndpointConnectionError

    from mlops_ops.exceptions import IngestError

    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(40)))
    tables = _dataset()
    real_get = client.get_object
    failures = {"left": 2}

    def flaky(**kwargs):  # type: ignore[no-untyped-def]
        if failures["left"] > 0:
            failures["left"] -= 1
            raise EndpointConnectionError(endpoint_url="http://s3.down")
        return real_get(**kwargs)

    monkeypatch.setattr(client, "get_object", flaky)
    result = _run(client, bucket, tables, backoff_s=0.05)  # two failures, then the read succeeds
    assert result.rows == 40 and result.dead == []
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=_csv(range(40, 50)))
    failures["left"] = 100  # S3 stays down
    with pytest.raises(IngestError, match=r"failed 4 times with transient errors.*nothing was recorded"):
        _run(client, bucket, tables, backoff_s=0.05)
    assert committed_rows(tables, "raw_dead_letters") == []  # a network error never dead-letters an object
    failures["left"] = 0
    assert _run(client, bucket, tables).rows == 10  # the object was not marked as seen: read when S3 is back
    assert sorted(r["id"] for r in _rows(tables)) == sorted(f"r{i}" for i in range(50))


def test_an_outside_reader_sees_the_table_with_plain_pyiceberg(source) -> None:  # type: ignore[no-untyped-def]
    """Only pyiceberg and the environment `mlops-ops stack env` exports: nothing of ours."""
    import subprocess
    import sys

    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(25)))
    tables = _dataset()
    _run(client, bucket, tables)
    code = ("from pyiceberg.catalog import load_catalog\n"
            f"t = load_catalog().load_table('{tables.pipeline}.raw')\n"
            "print(t.scan().to_arrow().num_rows, t.current_snapshot().summary['mlops.cursor.s3'][:5])\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["25", "s3://"]


def test_a_column_that_changes_type_dead_letters_its_object_not_the_prefix(source) -> None:  # type: ignore[no-untyped-def]
    """Without a schema, `10.5` where integers were (in this batch or in the table) makes that object a dead letter
    naming the column and both types; every other object lands (N13: the batch used to fail, blocking the prefix).
    A cell that reads `timeout` is content too, never a network error retried forever (N10)."""
    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"id,n\na1,1\na2,2\n")
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=b"id,n\nb1,10.5\n")
    client.put_object(Bucket=bucket, Key="in/c.csv", Body=b"id,n,note\nc1,3,new column\n")
    dataset = _dataset()
    first = _run(client, bucket, dataset, schema=None)
    assert first.objects == ["in/a.csv", "in/c.csv"] and first.rows == 3
    (dead,) = first.dead
    assert dead["key"] == "in/b.csv" and "'n' is double here, int64 in an earlier object" in dead["reason"]
    client.put_object(Bucket=bucket, Key="in/d.csv", Body=b"id,n\nd1,2.5\n")  # the table has n as long now
    client.put_object(Bucket=bucket, Key="in/e.csv", Body=b"id,n\ne1,4\n")
    second = _run(client, bucket, dataset, schema=None)
    assert second.objects == ["in/e.csv"] and [d["key"] for d in second.dead] == ["in/d.csv"]
    assert "column 'n' of" in second.dead[0]["reason"] and "is long in the table" in second.dead[0]["reason"]
    assert sorted(r["id"] for r in _rows(dataset)) == ["a1", "a2", "c1", "e1"]
    assert sorted(d["_object_key"] for d in committed_rows(dataset, "raw_dead_letters")) == ["in/b.csv", "in/d.csv"]

    typed = _dataset()
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"id,amount,n\nt1,1.0,timeout\nt2,2.0,2\n")
    for key in ("in/b.csv", "in/c.csv", "in/d.csv", "in/e.csv"):
        client.delete_object(Bucket=bucket, Key=key)
    result = _run(client, bucket, typed, backoff_s=30)  # a retry would wait 30 s: the content error does not
    assert result.rows == 0 and "(column 'n')" in result.dead[0]["reason"]


def test_s3_refusing_fails_at_once_and_a_key_deleted_after_the_listing_is_skipped(stack, source, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """403 is S3 saying no: no retry changes it, so the run fails at once naming it, nothing recorded (N10). An
    object deleted between the listing and its read is not a failure of the others: skipped, not recorded."""
    import dataclasses
    import time

    from mlops_ops.exceptions import IngestError

    client, bucket = source
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=_csv(range(10)))
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=_csv(range(10, 20)))
    dataset = _dataset()
    wrong = s3_client(dataclasses.replace(stack.settings, s3_secret_key="not-the-secret"))
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"listing: S3 refused it .*credentials.*Nothing was recorded"):
        _run(wrong, bucket, dataset, backoff_s=30)
    assert time.monotonic() - started < 30  # not retried with backoff

    real_get = client.get_object

    def deleted_meanwhile(**kwargs):  # type: ignore[no-untyped-def]
        if kwargs["Key"] == "in/b.csv":
            client.delete_object(Bucket=bucket, Key="in/b.csv")  # someone removes it after the listing
        return real_get(**kwargs)  # S3's own NoSuchKey for in/b.csv

    with monkeypatch.context() as patched:
        patched.setattr(client, "get_object", deleted_meanwhile)
        result = _run(client, bucket, dataset, backoff_s=30)
    assert result.objects == ["in/a.csv"] and result.dead == [] and result.rows == 10
    client.put_object(Bucket=bucket, Key="in/b.csv", Body=_csv(range(10, 20)))
    assert _run(client, bucket, dataset).objects == ["in/b.csv"]  # back: ingested, it was never recorded
