"""What a spec's first run would fail on, found before it runs (``mlops-ops validate``).

Parsing a spec (:mod:`mlops_ops.spec_loader`) checks its shape and the fit between stages without importing
anything. These checks go further, as the run would: every dotted path imports and takes the arguments the library
passes; the quality gate's suite and checkpoints exist in the Great Expectations context and name columns the raw
table has; the preprocessing SQL file exists and Spark's parser accepts it; the Airflow connections the spec names
exist (when an Airflow environment is configured). Each problem is a :class:`SpecProblem` with the field's line.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_ops.exceptions import SpecProblem
from mlops_ops.spec import PipelineSpec

EXPLAIN = "EXPLAIN "  # prefixed to a preprocessing query to parse it without running it

Loc = tuple[str | int, ...]
# What the library passes to each kind of callable: positional arguments and keyword names.
CONTRACTS: dict[str, tuple[tuple[Any, ...], tuple[str, ...], str]] = {
    "deserializer": ((b"{}",), (), "fn(value: bytes) -> dict"),
    "transform": ((object(), object()), (), "fn(df, spark, **params)"),
    "trainer": ((object(),), ("params", "log_metric"), "fn(data, *, params, log_metric) -> TrainedModel"),
    "metric": ((object(), object()), (), "fn(y_true, y_pred) -> float"),
}


def _callables(spec: PipelineSpec) -> Iterator[tuple[Loc, str, str]]:
    source = spec.source
    if source is not None and source.kafka is not None and source.kafka.deserializer:
        yield ("source", "kafka", "deserializer"), source.kafka.deserializer, "deserializer"
    if spec.preprocess is not None and spec.preprocess.transform:
        yield ("preprocess", "transform"), spec.preprocess.transform, "transform"
    if spec.train is not None and ":" in spec.train.trainer:
        yield ("train", "trainer"), spec.train.trainer, "trainer"
    if spec.evaluate is not None:
        for name, metric in spec.evaluate.custom_metrics.items():
            yield ("evaluate", "custom_metrics", name, "function"), metric.function, "metric"


def _signature_problem(fn: Callable[..., Any], kind: str, params: dict[str, Any]) -> str | None:
    args, keywords, shape = CONTRACTS[kind]
    kwargs = dict.fromkeys(keywords)
    if kind == "transform":
        kwargs.update(params)  # the spec's preprocess.params arrive as keyword arguments
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as err:
        return f"does not take what the library passes ({shape}): {err}"
    except ValueError:  # no signature (a builtin): nothing to check
        return None
    return None


def callable_problems(spec: PipelineSpec, search_path: list[Path]) -> list[tuple[Loc, str]]:
    """Every dotted path imports (with ``search_path`` first on ``sys.path``, as the DAG folder is) and fits."""
    import sys

    from mlops_ops.callables import load_callable

    out: list[tuple[Loc, str]] = []
    added = [str(p) for p in search_path if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        for loc, path, kind in _callables(spec):
            try:
                fn = load_callable(path, field=".".join(map(str, loc)))
            except (ValueError, ImportError) as err:
                out.append((loc, str(err)))
                continue
            params = spec.preprocess.params if kind == "transform" and spec.preprocess else {}
            problem = _signature_problem(fn, kind, params)
            if problem:
                out.append((loc, problem))
            if kind == "trainer" and spec.train is not None:
                tasks = getattr(fn, "tasks", None)
                if tasks is not None and spec.train.task not in tuple(tasks):
                    out.append((loc, f"supports task(s) {', '.join(tasks)}, not '{spec.train.task}'"))
    finally:
        for entry in added:
            sys.path.remove(entry)
    return out


def _expectation_columns(expectation: Any) -> list[str]:
    configuration = getattr(expectation, "configuration", None)  # GX 1.x: the expectation's kwargs live here
    kwargs = dict(getattr(configuration, "kwargs", None) or getattr(expectation, "kwargs", None) or {})
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), list | tuple):
            columns += [c for c in kwargs[key] if isinstance(c, str)]
    return columns


def quality_problems(spec: PipelineSpec, context_root: Path | None) -> list[tuple[Loc, str]]:
    """The suite exists, the gate's checkpoints exist, and the suite names only columns of the raw table."""
    if spec.quality is None:
        return []
    from mlops_ops.exceptions import GxContextMissingError
    from mlops_ops.hooks.gx import GreatExpectationsHook, checkpoint_name
    from mlops_ops.lake.tables import SOURCE_COLUMNS

    hook = GreatExpectationsHook(context_root)
    try:
        context = _context(hook)
    except GxContextMissingError as err:
        return [(("quality", "suite"), str(err))]
    suite_name = spec.quality.suite
    try:
        suite = context.suites.get(suite_name)
    except Exception:  # noqa: BLE001 - GX raises its own errors for a missing suite
        known = ", ".join(sorted(s.name for s in context.suites.all())) or "none"
        return [(("quality", "suite"), f"no expectation suite '{suite_name}' in {hook.context_root} (suites: {known})")]
    out: list[tuple[Loc, str]] = []
    engines = ("spark", "pandas") if spec.quality.engine == "auto" else (spec.quality.engine,)
    known_checkpoints = {c.name for c in context.checkpoints.all()}
    for engine in engines:
        if checkpoint_name(suite_name, engine) not in known_checkpoints:
            out.append((("quality", "suite"), f"checkpoint '{checkpoint_name(suite_name, engine)}' is missing "
                                              f"(engine {spec.quality.engine}); create it: mlops-ops gx scaffold "
                                              f"{suite_name}"))  # fmt: skip
    schema = _raw_schema(spec)
    if schema is not None:
        columns = set(schema) | set(SOURCE_COLUMNS)
        for expectation in suite.expectations:
            unknown = [c for c in _expectation_columns(expectation) if c not in columns]
            if unknown:
                kind = getattr(expectation, "expectation_type", None) or type(expectation).__name__
                out.append((("quality", "suite"), f"suite '{suite_name}': {kind} names column(s) "
                                                  f"{', '.join(unknown)} that the raw table does not have "
                                                  f"(its columns: {', '.join(sorted(schema))})"))  # fmt: skip
    return out


_CONTEXTS: dict[Path, Any] = {}


def _context(hook: Any) -> Any:
    root = Path(hook.context_root).resolve()
    if root not in _CONTEXTS:
        _CONTEXTS[root] = hook.get_conn()
    return _CONTEXTS[root]


def _raw_schema(spec: PipelineSpec) -> dict[str, str] | None:
    source = spec.source
    if source is None:
        return None
    schemas = [s.schema_ for s in (source.kafka, source.s3) if s is not None]
    if not schemas or any(s is None for s in schemas):
        return None  # an inferred schema: the columns are known only once data arrives
    merged: dict[str, str] = {}
    for schema in schemas:
        merged.update(schema or {})
    return merged


def sql_problems(spec: PipelineSpec, source: Path) -> list[tuple[Loc, str]]:
    """The preprocessing SQL file exists and Spark's own parser accepts it (the statement is not run)."""
    if spec.preprocess is None or spec.preprocess.sql is None:
        return []
    path = Path(spec.preprocess.sql)
    path = path if path.is_absolute() else source.parent / path
    if not path.is_file():
        return [(("preprocess", "sql"), f"no SQL file at {path}")]
    text = path.read_text(encoding="utf-8")
    from mlops_ops.hooks.spark import SparkHook

    spark = SparkHook().get_conn()  # a local session, or the deployment's Spark Connect server: both parse
    try:
        # EXPLAIN parses the whole statement and runs none of it (analysis errors, such as the view ``raw`` that
        # does not exist here, are part of its output, not raised); only Spark's parser raises here
        spark.sql(EXPLAIN + text).collect()
    except Exception as err:  # noqa: BLE001 - classic (py4j) and Connect (gRPC) wrap Spark's ParseException
        first = str(err).split("\n\n")[0].replace("\n", " ")
        message = re.sub(r"\(line 1, pos (\d+)\)", lambda m: f"(line 1, pos {int(m[1]) - len(EXPLAIN)})", first)
        return [(("preprocess", "sql"), f"{path.name} does not parse: {message[:400]}")]
    return []


def _connections(spec: PipelineSpec) -> Iterator[tuple[Loc, str]]:
    source = spec.source
    if source is not None and source.kafka is not None:
        yield ("source", "kafka", "conn_id"), source.kafka.conn_id
    if source is not None and source.s3 is not None:
        yield ("source", "s3", "conn_id"), source.s3.conn_id
    if spec.retrain is not None and spec.retrain.control_topic:
        yield ("retrain", "control_conn_id"), spec.retrain.control_conn_id


def connection_problems(spec: PipelineSpec) -> list[tuple[Loc, str]]:
    """Each connection the spec names is known to Airflow (environment variables, secrets backend or database)."""
    from airflow.models.connection import Connection

    from mlops_ops._compat import airflow_exception

    missing = airflow_exception("AirflowNotFoundException")
    out = []
    for loc, conn_id in _connections(spec):
        try:
            Connection.get_connection_from_secrets(conn_id)
        except missing:
            out.append((loc, f"Airflow has no connection '{conn_id}' (AIRFLOW_CONN_{conn_id.upper()}, a secrets "
                             "backend or `airflow connections add`)"))  # fmt: skip
    return out


def deep_problems(spec: PipelineSpec, source: Path, root: Any, *, connections: bool | None = None,
                  context_root: Path | None = None) -> list[SpecProblem]:  # fmt: skip
    """Every check of this module, as problems with the line of the field (``root``: the spec's YAML node)."""
    from mlops_ops.spec_loader import line_of

    if connections is None:
        connections = "AIRFLOW_HOME" in os.environ
    search = [source.parent.resolve(), *(p.resolve() for p in source.parents[:3])]
    found = callable_problems(spec, search) + quality_problems(spec, context_root) + sql_problems(spec, source)
    if connections:
        found += connection_problems(spec)
    return [SpecProblem(".".join(map(str, loc)), message, None, line_of(root, loc)) for loc, message in found]
