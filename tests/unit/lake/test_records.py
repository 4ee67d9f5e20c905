from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_ops.lake.records import RecordError, conform, json_decoder, load_decoder

SCHEMA = {"id": "string", "n": "int", "x": "float", "ok": "bool", "at": "timestamp"}


def test_conform_casts_and_drops_extra_keys() -> None:
    row = conform({"id": "a", "n": 3, "x": 2, "ok": True, "at": "2026-01-02T03:04:05Z", "extra": 1}, SCHEMA)
    assert row == {"id": "a", "n": 3, "x": 2.0, "ok": True, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}


def test_conform_accepts_nulls_and_epoch_timestamps() -> None:
    row = conform({"id": None, "n": None, "x": 1.5, "ok": False, "at": 0}, SCHEMA)
    assert row["id"] is None and row["at"] == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"n": 1, "x": 1.0, "ok": True, "at": 0}, "missing column 'id'"),
        ({"id": "a", "n": "1", "x": 1.0, "ok": True, "at": 0}, "column 'n' must be int, got str"),
        ({"id": "a", "n": True, "x": 1.0, "ok": True, "at": 0}, "column 'n' must be int, got bool"),
        ({"id": "a", "n": 1, "x": "1", "ok": True, "at": 0}, "column 'x' must be float"),
        ({"id": "a", "n": 1, "x": 1.0, "ok": 1, "at": 0}, "column 'ok' must be bool"),
        ({"id": "a", "n": 1, "x": 1.0, "ok": True, "at": "yesterday"}, "column 'at' must be timestamp"),
    ],
)
def test_conform_rejects_violations(row: dict, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        conform(row, SCHEMA)


def test_no_schema_keeps_row() -> None:
    assert conform({"a": [1, 2]}, None) == {"a": [1, 2]}


@pytest.mark.parametrize(("raw", "fragment"), [(b"nope", "not valid JSON"), (b"[1]", "must be an object"),
                                               (b"\xff\xfe", "not valid JSON")])  # fmt: skip
def test_json_decoder_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        json_decoder(raw)


def surrogate_decoder(raw: bytes) -> dict:
    return {"id": raw.decode("utf-8", "surrogateescape")}  # b"\xff" becomes "\udcff"


def test_load_decoder() -> None:
    assert load_decoder(None) is json_decoder
    assert load_decoder("json:loads")(b'{"a": 1}') == {"a": 1}
    assert json_decoder(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a surrogate pair is one character
    with pytest.raises(RecordError, match="lone UTF-16 surrogate"):  # a deserializer's text is checked too (N4)
        load_decoder("tests.unit.lake.test_records:surrogate_decoder")(b"ok \xff")
    with pytest.raises(ValueError, match="cannot be imported"):
        load_decoder("json:nothing_here")


def test_fast_conformer_matches_conform() -> None:
    from mlops_ops.lake.records import make_conformer

    fast = make_conformer(SCHEMA)
    good = [{"id": "a", "n": 3, "x": 2, "ok": True, "at": "2026-01-02T03:04:05Z", "extra": 1},
            {"id": None, "n": None, "x": 1.5, "ok": False, "at": 0}]  # fmt: skip
    for row in good:
        assert fast(row) == conform(row, SCHEMA)
    bad = [
        {"n": 1, "x": 1.0, "ok": True, "at": 0},
        {"id": "a", "n": True, "x": 1.0, "ok": True, "at": 0},
        {"id": "a", "n": 1, "x": "1", "ok": True, "at": 0},
        {"id": "a", "n": 1, "x": 1.0, "ok": 1, "at": 0},
    ]
    for row in bad:
        with pytest.raises(RecordError) as slow_err:
            conform(row, SCHEMA)
        with pytest.raises(RecordError) as fast_err:
            fast(row)
        assert str(fast_err.value) == str(slow_err.value)
    assert make_conformer(None)({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[" * 100_000, "nested too deeply"),  # RecursionError inside json (every Python), not a crash
        (b'{"id": "a", "n": 1, "x": 1.0, "ok": true, "at": "10000-01-01T00:00:00"}', "column 'at' must be timestamp"),
        (b'{"id": "a", "n": 1, "x": 1.0, "ok": true, "at": 1e15}', "column 'at' must be timestamp"),
        (b'{"id": "a", "n": 100000000000000000000000, "x": 1.0, "ok": true, "at": 0}', "column 'n' must be int"),
        (b'{"id": "\xc3\x28"}', "not valid JSON"),  # bad UTF-8 inside a string
        (b'{"id": "a\\ud800", "n": 1, "x": 1.0, "ok": true, "at": 0}', "lone UTF-16 surrogate"),  # N4
        (b'{"id": "a", "\\udc00": 1, "n": 1, "x": 1.0, "ok": true, "at": 0}', "lone UTF-16 surrogate"),
    ],
)
def test_poison_messages_are_record_errors(raw: bytes, fragment: str) -> None:
    from mlops_ops.lake.records import make_conformer

    conform_fast = make_conformer(SCHEMA)
    with pytest.raises(RecordError, match=fragment):
        conform_fast(json_decoder(raw))


def test_inferred_columns_keep_their_first_type() -> None:
    from mlops_ops.lake.records import InferredColumns

    columns = InferredColumns({"known": "string"}, reserved={"_offset"})
    assert columns({"a": 1, "b": "x", "known": "k"}) == {"a": 1, "b": "x", "known": "k"}
    assert columns({"a": 2, "c": 1.5}) == {"a": 2, "c": 1.5}
    assert columns({"c": 3})["c"] == 3.0  # an int in a float column is widened
    for row, fragment in [({"a": "two"}, "column 'a' is int, this record has string"),
                          ({"known": 1}, "column 'known' is string"),
                          ({"a": 1.5}, "column 'a' is int, this record has float"),
                          ({"d": {"nested": 1}}, "nested value"),
                          ({"_offset": 1}, "clashes with a lake source column"),
                          ({"e": 10**30}, "does not fit 64 bits")]:  # fmt: skip
        with pytest.raises(RecordError, match=fragment):
            columns(row)
    assert "d" not in columns.kinds and "e" not in columns.kinds  # a refused record teaches no type
    assert columns({"f": None}) == {}  # a column seen only as null gets no type yet
