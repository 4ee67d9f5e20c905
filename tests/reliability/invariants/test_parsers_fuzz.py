"""Every parser of outside bytes, fuzzed: only the library's own errors come out (never ``RecursionError``,
``UnicodeEncodeError``, a pyarrow or YAML exception, or a crash), and what comes out can be stored.

Kafka values (the JSON decoder and the schema's conformer), control-topic messages, S3 objects (CSV, JSON lines,
Parquet, through a whole ingest run: a bad object is a dead letter, never a failed run) and pipeline specs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_ops.exceptions import SpecError
from mlops_ops.lake.records import RecordError, json_decoder, make_conformer
from mlops_ops.triggers.control import MalformedRequest, parse_request
from tests.reliability.invariants.settings import harness_settings

SCHEMA = {"id": "string", "x": "int", "f": "float", "ok": "bool", "at": "timestamp"}
texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)  # lone surrogates too
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=12
)


def _json_bytes(value: Any, ensure_ascii: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


kafka_values = (
    st.binary(max_size=200)
    | st.builds(_json_bytes, json_values, st.booleans())
    | st.builds(_json_bytes, st.fixed_dictionaries({}, optional={k: json_values for k in SCHEMA}), st.booleans())
    | st.integers(1, 50_000).map(lambda n: b"[" * n)
    | st.integers(1, 50_000).map(lambda n: b'{"a":' * n)
)


@harness_settings(examples=200, steps=1)
@given(kafka_values)
def test_kafka_values_become_rows_or_record_errors(raw: bytes) -> None:
    conform = make_conformer(SCHEMA)
    try:
        row = conform(json_decoder(raw))
    except RecordError:
        return
    for name, value in row.items():  # whatever passes can be written as UTF-8 (Parquet)
        name.encode("utf-8")
        if isinstance(value, str):
            value.encode("utf-8")


control_messages = kafka_values | st.builds(
    _json_bytes, st.fixed_dictionaries({"pipeline": st.just("p") | texts}, optional={"reason": json_values}),
    st.booleans(),
)  # fmt: skip


@harness_settings(examples=200, steps=1)
@given(control_messages)
def test_control_messages_are_requests_or_refused(raw: bytes) -> None:
    try:
        request = parse_request(raw, pipeline="p", topic="control")
    except MalformedRequest:
        return
    if request is not None:
        json.dumps(request).encode("utf-8")  # the Asset event Airflow stores
        assert request["pipeline"] == "p"


yaml_texts = (
    st.text(max_size=300)
    | st.builds(lambda v: json.dumps(v, ensure_ascii=False), json_values)
    | st.builds(
        lambda a, b: f"pipeline: {a}\nsource:\n  kafka:\n    topics: [{b}]\ntrain:\n  trainer: {a}\n", texts, texts
    )
    | st.integers(1, 5_000).map(lambda n: "a: " + "[" * n)
    | st.integers(1, 30).map(lambda n: "a: &a [" + ",".join(["*a"] * n) + "]")
)


@harness_settings(examples=200, steps=1)
@given(yaml_texts)
def test_specs_parse_or_raise_spec_errors(text: str) -> None:
    from mlops_ops.spec_loader import parse_spec

    try:
        parse_spec(text, source="fuzz.yaml")
    except SpecError as err:
        assert "fuzz.yaml" in str(err)


def _csv(rows: list[list[Any]]) -> bytes:
    return "\n".join(",".join(str(c) for c in r) for r in rows).encode("utf-8", "surrogatepass")


s3_bodies = (
    st.binary(max_size=300)
    | st.lists(st.lists(scalars, min_size=1, max_size=3), max_size=5).map(_csv)
    | st.lists(st.builds(_json_bytes, json_values, st.booleans()), max_size=5).map(b"\n".join)
    | st.binary(max_size=100).map(lambda b: b"PAR1" + b + b"PAR1")
)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_s3_objects_become_rows_or_dead_letters(fmt: str, tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    from mlops_ops.lake import batches
    from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
    from mlops_ops.lake.tables import PipelineTables
    from tests.reliability.invariants.sources import BUCKET, PREFIX, SimObject, SimS3

    (tmp_path / "wh").mkdir()
    catalog = SqlCatalog("f", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    counter = {"n": 0}

    @harness_settings(examples=25, steps=1)
    @given(body=s3_bodies, typed=st.booleans())
    def one_object(body: bytes, typed: bool) -> None:
        import hashlib

        counter["n"] += 1
        tables = PipelineTables(catalog, f"{fmt}{counter['n']}")
        s3 = SimS3()
        s3.objects[PREFIX + "o"] = SimObject(body, hashlib.md5(body).hexdigest(), 0, False)
        settings = S3BatchSettings(bucket=BUCKET, prefix=PREFIX, format=fmt,  # type: ignore[arg-type]
                                   schema={"id": "string", "x": "int"} if typed else None, backoff_s=0.0)  # fmt: skip
        result = S3BatchIngest(s3.client(), tables, settings).run()  # never raises: rows, or a dead letter
        assert result.staged is not None
        batches.publish(tables, tables.load("raw"), result.staged)

    one_object()
