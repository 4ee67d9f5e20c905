from __future__ import annotations

import pyarrow as pa
import pytest

from mlops_ops.exceptions import LakeSchemaError
from mlops_ops.lake.tables import (
    SOURCE_COLUMNS,
    PipelineTables,
    arrow_schema,
    evolve,
    parse_snapshot_ref,
    pyiceberg_env,
    raw_columns,
    snapshot_ref,
)


def test_raw_schema_is_the_spec_plus_source_columns(tables: PipelineTables) -> None:
    raw = tables.raw(raw_columns({"id": "string", "n": "int", "at": "timestamp"}))
    names = [f.name for f in raw.schema().fields]
    assert names[:3] == ["id", "n", "at"] and set(SOURCE_COLUMNS) <= set(names)
    assert str(raw.schema().find_field("at").field_type) == "timestamptz"
    assert raw.current_snapshot() is not None  # an empty first snapshot: audit branches start from it


def test_spec_columns_may_not_take_the_lake_s_names() -> None:
    with pytest.raises(LakeSchemaError, match="_offset"):
        raw_columns({"id": "string", "_offset": "int"})


def test_a_new_column_evolves_the_table_and_a_type_change_is_refused(tables: PipelineTables) -> None:
    raw = tables.raw(raw_columns({"id": "string", "n": "int"}))
    raw = evolve(raw, arrow_schema({"id": "string", "n": "int", "extra": "float"}))
    assert raw.schema().find_field("extra") is not None
    assert evolve(raw, arrow_schema({"id": "string"})).schema() == raw.schema()  # fewer columns: nothing to do
    with pytest.raises(LakeSchemaError, match=r"column 'n' of pipe.raw is long in the table.*string"):
        evolve(raw, arrow_schema({"n": "string"}))
    evolve(raw, pa.schema([pa.field("n", pa.int32())]))  # narrower int: readable as long, allowed


def test_pyiceberg_env_is_what_pyiceberg_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from pyiceberg.utils.config import Config

    for name in [n for n in os.environ if n.upper().startswith("PYICEBERG_")]:  # e.g. the session stack's
        monkeypatch.delenv(name)

    env = pyiceberg_env("mlops", {"type": "sql", "uri": "sqlite:///x.db", "s3.access-key-id": "k",
                                  "s3.endpoint": "http://127.0.0.1:1"})  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = Config()
    assert config.get_default_catalog_name() == "mlops"
    assert config.get_catalog_config("mlops") == {"type": "sql", "uri": "sqlite:///x.db", "s3.access-key-id": "k",
                                                  "s3.endpoint": "http://127.0.0.1:1"}  # fmt: skip


def test_snapshot_refs_round_trip() -> None:
    assert parse_snapshot_ref(snapshot_ref("churn.features", 123)) == ("churn.features", 123)
    with pytest.raises(ValueError, match="not a table snapshot reference"):
        parse_snapshot_ref("churn.features")


def test_a_rebuild_reshapes_the_table_and_time_travel_keeps_the_old_columns(tables: PipelineTables) -> None:
    from mlops_ops.lake.tables import ensure_table, reshape

    old = pa.schema([("k", pa.string()), ("gone", pa.float64()), ("label", pa.int64())])
    table = ensure_table(tables.catalog, tables.ident("features"), old)
    table.append(pa.table({"k": ["a"], "gone": [1.5], "label": [1]}, schema=old))
    before = table.current_snapshot().snapshot_id
    new = pa.schema([("k", pa.string()), ("label", pa.bool_()), ("added", pa.string())])
    table = reshape(table, new)
    assert [(f.name, str(f.field_type)) for f in table.schema().fields] == [
        ("k", "string"), ("label", "boolean"), ("added", "string")]  # fmt: skip
    assert table.scan(snapshot_id=before).to_arrow().to_pylist() == [{"k": "a", "gone": 1.5, "label": 1}]


def test_a_table_is_created_whole_in_one_commit(tables: PipelineTables) -> None:
    """Name mapping and first snapshot come with the creation: a process killed while creating a table (the fault
    test's random SIGKILLs found one between the steps) leaves no table or a complete one, never one whose Parquet
    files can't be read by column name."""
    table = tables.dead_letters()
    assert table.metadata.metadata_log == []  # one metadata file: the creation was the only commit
    mapping = table.properties["schema.name-mapping.default"]
    assert all(f'"names":["{f.name}"],"field-id":{f.field_id}' in mapping for f in table.schema().fields)
    (snapshot,) = table.snapshots()
    assert snapshot.summary["mlops.event"] == "created" and table.current_snapshot() == snapshot
    assert tables.dead_letters().metadata_location == table.metadata_location  # loading again commits nothing
