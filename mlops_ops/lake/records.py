"""Decode raw message bytes into rows, checking an optional schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Decoder = Callable[[bytes], Mapping[str, Any]]


class RecordError(ValueError):
    """A message that cannot become a row; the reason goes to the quarantine."""


# a JSON escape of a UTF-16 surrogate: the one way valid UTF-8 bytes decode to a string UTF-8 cannot hold again
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_decoder(raw: bytes) -> Mapping[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))  # decoding first skips json's encoding detection
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"not valid JSON: {err}") from err
    except RecursionError as err:
        raise RecordError("not valid JSON: nested too deeply") from err
    if not isinstance(value, dict):
        raise RecordError(f"JSON value must be an object, got {type(value).__name__}")
    if _SURROGATE_ESCAPE.search(raw):  # a pair is one character; a lone half cannot be written as UTF-8
        check_text(value)
    return value


def check_text(row: Mapping[str, Any]) -> None:
    """Refuse a row whose names or string values UTF-8 cannot encode (a lone surrogate such as ``"\\ud800"``):
    the Parquet writer would fail on the whole file, after the message's own checks."""
    for name, value in row.items():
        for text in (name, value):
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as err:
                    raise RecordError(
                        f"field {name!r:.40} holds a lone UTF-16 surrogate ({text[err.start]!r}): not text that "
                        "can be stored"
                    ) from err


def load_decoder(dotted: str | None) -> Decoder:
    """The default JSON decoder, or a user function given as ``package.module:function`` (its rows' text is
    checked as the JSON decoder's is)."""
    if dotted is None:
        return json_decoder
    from mlops_ops.callables import load_callable

    func: Decoder = load_callable(dotted, field="deserializer")

    def checked(raw: bytes) -> Mapping[str, Any]:
        row = func(raw)
        if isinstance(row, Mapping):
            check_text(row)
        return row

    return checked


INT64 = range(-(2**63), 2**63)


def _to_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    if v not in INT64:
        raise ValueError("does not fit 64 bits")
    return v


def _to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError
    return float(v)


def _to_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _to_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _to_timestamp(v: Any) -> datetime:
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v, tz=UTC)
    if isinstance(v, str):
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError


CASTS: dict[str, Callable[[Any], Any]] = {
    "string": _to_str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "timestamp": _to_timestamp,
}


_EXACT: dict[str, type] = {"string": str, "int": int, "float": float, "bool": bool}


def make_conformer(schema: Mapping[str, str] | None) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A fast :func:`conform` for one schema: values already of the exact type skip the cast functions."""
    if schema is None:
        return dict
    columns = [(name, kind, _EXACT.get(kind), CASTS[kind]) for name, kind in schema.items()]

    def conformer(row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind, exact, cast in columns:
            value = row.get(name, _MISSING)
            if (type(value) is exact and exact is not int) or value is None:
                out[name] = value
            elif value is _MISSING:
                raise RecordError(f"missing column '{name}' ({kind})")
            else:
                try:
                    out[name] = cast(value)
                except (TypeError, ValueError, OverflowError, OSError) as err:
                    raise RecordError(
                        f"column '{name}' must be {kind}, got {type(value).__name__} {value!r:.40}"
                    ) from err
        return out

    return conformer


_MISSING = object()


class InferredColumns:
    """Rows without a spec schema: each column keeps the type it was first seen with (in the table or the
    batch); a value of another type is the record's error, never the batch's. ``int`` values in a ``float``
    column are widened; nested values and names of the lake's own columns are refused."""

    def __init__(self, known: Mapping[str, str], reserved: set[str]) -> None:
        self.kinds: dict[str, str] = dict(known)
        self.reserved = reserved

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        found: dict[str, str] = {}
        for name, value in row.items():
            if not isinstance(name, str) or not name:
                raise RecordError(f"field name {name!r} is not a non-empty string")
            if name in self.reserved:
                raise RecordError(f"field '{name}' clashes with a lake source column; rename it or give a schema")
            if value is None:
                out[name] = None
                continue
            seen = _kind_of(value, name)
            kind = self.kinds.get(name) or found.get(name)
            if kind is None:
                found[name] = kind = seen
            if kind == seen:
                out[name] = value
            elif kind == "float" and seen == "int":
                out[name] = float(value)
            else:
                raise RecordError(f"column '{name}' is {kind}, this record has {seen} {value!r:.40}")
        self.kinds.update(found)
        return {k: v for k, v in out.items() if v is not None or k in self.kinds}


def _kind_of(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if value not in INT64:
            raise RecordError(f"column '{name}': integer {value!r:.40} does not fit 64 bits")
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise RecordError(
        f"column '{name}' has a nested value ({type(value).__name__}): give the source a schema or a deserializer "
        "that flattens it"
    )


def conform(row: Mapping[str, Any], schema: Mapping[str, str] | None) -> dict[str, Any]:
    """Return the row restricted to ``schema``'s columns, cast; raise :class:`RecordError` on a violation.

    Every schema column must be present (``null`` allowed); other keys are dropped.
    Without a schema the row is kept as decoded.
    """
    if schema is None:
        return dict(row)
    out: dict[str, Any] = {}
    for column, kind in schema.items():
        if column not in row:
            raise RecordError(f"missing column '{column}' ({kind})")
        value = row[column]
        if value is None:
            out[column] = None
            continue
        try:
            out[column] = CASTS[kind](value)
        except (TypeError, ValueError, OverflowError) as err:
            raise RecordError(f"column '{column}' must be {kind}, got {type(value).__name__} {value!r:.40}") from err
    return out
