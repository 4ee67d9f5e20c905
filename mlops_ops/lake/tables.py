"""The lake's Iceberg tables: the catalog, table names, schemas from the spec, schema evolution.

Contract (readable by any Iceberg engine, nothing of ours needed):

* namespace = pipeline;
* ``<pipeline>.raw``: every published row, spec columns plus source columns (:data:`SOURCE_COLUMNS`);
* ``<pipeline>.raw_dead_letters``: messages and objects that could not become rows, with the reason;
* ``<pipeline>.raw_quarantine``: batches a quality gate refused (the raw schema; the gate's verdict in the
  snapshot summary);
* ``<pipeline>.features``: the preprocessed table with its ``_split`` column;
* ``<pipeline>.drift_checks``: one row per drift check.

No Airflow here: a catalog is built from pyiceberg properties (an Airflow connection's extra, or pyiceberg's
own ``PYICEBERG_CATALOG__<NAME>__*`` environment variables).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mlops_ops._extras import require
from mlops_ops.exceptions import LakeSchemaError

log = logging.getLogger(__name__)

RAW = "raw"
DEAD_LETTERS = "raw_dead_letters"
QUARANTINE = "raw_quarantine"
FEATURES = "features"
DRIFT_CHECKS = "drift_checks"
QUALITY_CHECKS = "quality_checks"
SPLIT_COLUMN = "_split"
BATCH_COLUMN = "_batch"

# Every table we create: no silent rebase of a commit onto a moved table (pyiceberg retries by default and
# re-applies a commit on top of whatever won the race); name mapping so Parquet files without field ids
# (written by us or by Spark) are read by column name.
TABLE_PROPERTIES = {"commit.retry.num-retries": "0", "format-version": "2"}

# Columns every raw row carries besides the spec's: where it came from, exactly.
SOURCE_COLUMNS: dict[str, str] = {
    "_source": "string",  # kafka | s3
    "_topic": "string",
    "_partition": "int32",
    "_offset": "int",
    "_timestamp": "timestamp",
    "_object_key": "string",
    "_object_etag": "string",
    "_row": "int",
    BATCH_COLUMN: "string",
}
DEAD_LETTER_COLUMNS: dict[str, str] = {
    "_source": "string",
    "_topic": "string",
    "_partition": "int32",
    "_offset": "int",
    "_object_key": "string",
    "_object_etag": "string",
    "key": "binary",
    "value": "binary",
    "value_bytes": "int",
    "error": "string",
    BATCH_COLUMN: "string",
    "_at": "timestamp",
}
DRIFT_CHECK_COLUMNS: dict[str, str] = {
    "checked_at": "timestamp",
    "run_id": "string",
    "champion_version": "string",
    "raw_snapshot": "int",
    "window": "string",
    "rows": "int",
    "drifted": "bool",
    "drift_share": "float",
    "drifted_columns": "string",
    "report_uri": "string",
    "backfill": "bool",
}
# One row per batch the quality gate decided (passed or quarantined), written before the decision.
QUALITY_CHECK_COLUMNS: dict[str, str] = {
    "checked_at": "timestamp",
    "run_id": "string",
    "batch_id": "string",
    "source": "string",
    "suite": "string",
    "engine": "string",
    "passed": "bool",
    "rows": "int",
    "evaluated": "int",
    "failed": "int",
    "warnings": "int",
    "docs_path": "string",
}
ARROW_TYPES = ("string", "int", "int32", "float", "bool", "timestamp", "binary")


def arrow_type(kind: str) -> Any:
    pa = require("pyarrow", "lake")
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "int32": pa.int32(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "binary": pa.binary(),
    }[kind]


def arrow_schema(columns: Mapping[str, str]) -> Any:
    """A pyarrow schema (all fields nullable) for ``{column: kind}``."""
    pa = require("pyarrow", "lake")
    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in columns.items()])


def raw_columns(spec_schema: Mapping[str, str] | None) -> dict[str, str] | None:
    """Spec columns plus source columns; ``None`` when the spec gives no schema (inferred from the data)."""
    if spec_schema is None:
        return None
    clash = sorted(set(spec_schema) & set(SOURCE_COLUMNS))
    if clash:
        raise LakeSchemaError(
            f"schema column(s) {', '.join(clash)} clash with the lake's source columns "
            f"({', '.join(SOURCE_COLUMNS)}): rename them in the spec"
        )
    return {**spec_schema, **SOURCE_COLUMNS}


def load_catalog(name: str | None, properties: Mapping[str, str] | None = None) -> Any:
    """A pyiceberg catalog from properties, or from pyiceberg's own configuration when none are given."""
    catalog_module = require("pyiceberg.catalog", "lake")
    if properties:
        return catalog_module.load_catalog(name, **{str(k): str(v) for k, v in properties.items()})
    # pyiceberg reads its variables once, when first imported; read them now (they may have been set since)
    from pyiceberg.utils.config import Config

    config = Config()
    name = name or config.get_default_catalog_name()
    found = config.get_catalog_config(name)
    return catalog_module.load_catalog(name, **found) if found else catalog_module.load_catalog(name)


def pyiceberg_env(name: str, properties: Mapping[str, str]) -> dict[str, str]:
    """pyiceberg's own variables for a catalog: ``PYICEBERG_CATALOG__<NAME>__<KEY>`` (``.`` → ``__``,
    ``-`` → ``_``), plus ``PYICEBERG_DEFAULT_CATALOG``, so ``pyiceberg.catalog.load_catalog()`` finds it."""
    prefix = f"PYICEBERG_CATALOG__{name.upper()}__"
    env = {prefix + key.replace(".", "__").replace("-", "_").upper(): str(value) for key, value in properties.items()}
    env["PYICEBERG_DEFAULT_CATALOG"] = name
    return env


def identifier(pipeline: str, table: str) -> str:
    return f"{pipeline}.{table}"


def ensure_table(catalog: Any, ident: str, schema: Any) -> Any:
    """Load ``ident``, creating it (and its namespace) with ``schema`` when absent; evolve it to include
    ``schema``'s new columns. An incompatible change raises :class:`LakeSchemaError` naming the column."""
    exceptions = require("pyiceberg.exceptions", "lake")
    namespace = ident.rsplit(".", 1)[0]
    try:
        table = catalog.load_table(ident)
    except exceptions.NoSuchTableError:
        catalog.create_namespace_if_not_exists(namespace)
        try:
            table = _create(catalog, ident, schema)
            log.info("created Iceberg table %s", ident)
            return table
        except (exceptions.TableAlreadyExistsError, exceptions.CommitFailedException):
            table = catalog.load_table(ident)  # created meanwhile by another writer
    return evolve(table, schema)


def _create(catalog: Any, ident: str, schema: Any) -> Any:
    """Create the table in one commit, with its name mapping (Parquet files without Iceberg field ids, ours and
    Spark's, are read by column name) and an empty first snapshot on ``main`` (branches, the audit's, can only
    start from a snapshot): a process killed while creating leaves either no table or a complete one."""
    tx = catalog.create_table_transaction(ident, schema=schema, properties=TABLE_PROPERTIES)
    mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
    tx.set_properties(**{"schema.name-mapping.default": mapping})
    with tx.update_snapshot(snapshot_properties={"mlops.event": "created"}).fast_append():
        pass
    tx.commit_transaction()
    return catalog.load_table(ident)


def _set_name_mapping(table: Any) -> Any:
    """Parquet files without Iceberg field ids (ours, Spark's) are read by column name."""
    with table.transaction() as tx:
        tx.set_properties(**{"schema.name-mapping.default": table.schema().name_mapping.model_dump_json()})
    return table.refresh()


def _as_iceberg(schema: Any) -> Any:
    pa = require("pyarrow", "lake")
    incoming = list(schema) if isinstance(schema, pa.Schema) else [f for f in schema.as_arrow()]
    from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids

    return _pyarrow_to_schema_without_ids(pa.schema(incoming))


def type_problem(table: Any, schema: Any) -> str | None:
    """Why ``table`` cannot take data of ``schema`` (a column whose type Iceberg cannot promote), or ``None``."""
    have = {f.name: f for f in table.schema().fields}
    for field in _as_iceberg(schema).fields:
        old = have.get(field.name)
        if old is not None and not _promotable(old.field_type, field.field_type):
            return (
                f"column '{field.name}' of {'.'.join(table.name())} is {old.field_type} in the table, the new data "
                f"has {field.field_type}: an incompatible change. Allowed: adding columns, int -> long, "
                "float -> double. Rename the column or migrate the table."
            )
    return None


def evolve(table: Any, schema: Any) -> Any:
    """Add ``schema``'s columns that ``table`` lacks; refuse type changes that Iceberg cannot promote."""
    problem = type_problem(table, schema)
    if problem:
        raise LakeSchemaError(problem)
    have = {f.name for f in table.schema().fields}
    new_iceberg = _as_iceberg(schema)
    if all(f.name in have for f in new_iceberg.fields):
        return table
    added = [f.name for f in new_iceberg.fields if f.name not in have]
    exceptions = require("pyiceberg.exceptions", "lake")
    try:
        with table.update_schema() as update:
            for field in new_iceberg.fields:
                if field.name not in have:  # a tuple: a name with a "." is one top-level column, not a nested path
                    update.add_column((field.name,), field.field_type)
    except exceptions.CommitFailedException:  # another writer changed the table meanwhile: evolve what it is now
        return evolve(table.refresh(), schema)
    log.warning("table %s evolved: added column(s) %s", ".".join(table.name()), ", ".join(added))
    return _set_name_mapping(table.refresh())


def reshape(table: Any, schema: Any) -> Any:
    """Make ``table``'s columns exactly ``schema``'s: drop the columns it no longer has, re-create the ones whose
    type changed, add the new ones. Only for a table whose every row is about to be replaced (a full rebuild of
    derived data); snapshots before keep their own schema, so time travel to them still reads the old columns."""
    pa = require("pyarrow", "lake")
    from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids

    wanted = {f.name: f for f in _pyarrow_to_schema_without_ids(pa.schema(list(schema))).fields}
    current = table.schema().fields
    stale = [f.name for f in current
             if f.name not in wanted or not _promotable(f.field_type, wanted[f.name].field_type)]  # fmt: skip
    if stale:
        with table.update_schema() as update:
            for name in stale:
                update.delete_column(name)
        log.warning("table %s: column(s) %s dropped for the rebuild", ".".join(table.name()), ", ".join(stale))
        table = table.refresh()
    return evolve(table, schema)


def _promotable(old: Any, new: Any) -> bool:
    from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType

    if old == new:
        return True
    return (isinstance(old, LongType) and isinstance(new, IntegerType)) or (
        isinstance(old, DoubleType) and isinstance(new, FloatType)
    )


def table_or_none(catalog: Any, ident: str) -> Any:
    exceptions = require("pyiceberg.exceptions", "lake")
    try:
        return catalog.load_table(ident)
    except (exceptions.NoSuchTableError, exceptions.NoSuchNamespaceError):
        return None


class PipelineTables:
    """The tables of one pipeline in one catalog."""

    def __init__(self, catalog: Any, pipeline: str) -> None:
        self.catalog = catalog
        self.pipeline = pipeline

    def ident(self, name: str) -> str:
        return identifier(self.pipeline, name)

    def load(self, name: str) -> Any:
        """The table, or ``None`` when it was never written."""
        return table_or_none(self.catalog, self.ident(name))

    def ensure(self, name: str, schema: Any) -> Any:
        return ensure_table(self.catalog, self.ident(name), schema)

    def raw(self, columns: Mapping[str, str] | None) -> Any:
        """``raw``, created from the spec's columns (or with only the source columns, to be evolved)."""
        return self.ensure(RAW, arrow_schema(columns if columns is not None else SOURCE_COLUMNS))

    def dead_letters(self) -> Any:
        return self.ensure(DEAD_LETTERS, arrow_schema(DEAD_LETTER_COLUMNS))

    def quarantine(self, raw: Any) -> Any:
        """Same columns as ``raw`` (evolved with it)."""
        return self.ensure(QUARANTINE, raw.schema().as_arrow())

    def drift_checks(self) -> Any:
        return self.ensure(DRIFT_CHECKS, arrow_schema(DRIFT_CHECK_COLUMNS))

    def quality_checks(self) -> Any:
        return self.ensure(QUALITY_CHECKS, arrow_schema(QUALITY_CHECK_COLUMNS))


def iceberg_kind(field_type: Any) -> str | None:
    """The spec kind of an Iceberg column type (``None`` for types a spec cannot name)."""
    from pyiceberg import types as t

    kinds = [
        (t.StringType, "string"),
        (t.LongType, "int"),
        (t.IntegerType, "int"),
        (t.DoubleType, "float"),
        (t.FloatType, "float"),
        (t.BooleanType, "bool"),
        (t.TimestamptzType, "timestamp"),
        (t.TimestampType, "timestamp"),
        (t.BinaryType, "binary"),
    ]
    for cls, kind in kinds:
        if isinstance(field_type, cls):
            return kind
    return None


def data_folder(table: Any, *parts: str) -> str:
    """Where new data files of ``table`` go (below the table's own location)."""
    return "/".join([table.location().rstrip("/"), "data", *parts])


def snapshot_ref(ident: str, snapshot_id: int) -> str:
    """A pinned version of a table, as tasks, MLflow tags and model versions record it: ``<ns>.<table>@<id>``."""
    return f"{ident}@{snapshot_id}"


def parse_snapshot_ref(ref: str) -> tuple[str, int]:
    ident, sep, sid = ref.rpartition("@")
    if not sep or not ident or not sid.lstrip("-").isdigit():
        raise ValueError(f"'{ref}' is not a table snapshot reference '<namespace>.<table>@<snapshot id>'")
    return ident, int(sid)
