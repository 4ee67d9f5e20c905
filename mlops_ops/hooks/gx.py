"""Hook for the project's Great Expectations file data context (``great_expectations/``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from mlops_ops._extras import require

ENGINES = ("pandas", "spark")


def default_context_root() -> Path:
    """``$MLOPS_OPS_GX_ROOT``, else ``great_expectations/`` beside the DAGs folder."""
    configured = os.environ.get("MLOPS_OPS_GX_ROOT")
    if configured:
        return Path(configured)
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).resolve().parent / "great_expectations"


def datasource_name(engine: str) -> str:
    return f"mlops_ops_{engine}"


def checkpoint_name(suite: str, engine: str) -> str:
    return f"{suite}.{engine}"


class GreatExpectationsHook(BaseHook):
    """Opens the file data context; suites, validation definitions and checkpoints live in its folder."""

    hook_name = "Great Expectations (file context)"

    def __init__(self, context_root: str | Path | None = None) -> None:
        super().__init__()
        self.context_root = Path(context_root) if context_root else default_context_root()

    def get_conn(self) -> Any:
        if not (self.context_root / "great_expectations.yml").is_file():
            from mlops_ops.exceptions import GxContextMissingError

            raise GxContextMissingError(
                f"no Great Expectations context at {self.context_root} (great_expectations.yml missing); "
                "create one with `mlops-ops gx init`, or set MLOPS_OPS_GX_ROOT / pass context_root"
            )
        return self._open()

    def init(self) -> Any:
        """Create a file context at ``context_root`` when there is none (GX's own layout); open it."""
        return self._open()

    def _open(self) -> Any:
        gx = require("great_expectations", "gx")
        noisy = logging.getLogger("great_expectations")
        if noisy.level == logging.NOTSET:
            noisy.setLevel(logging.WARNING)  # GX logs every datasource's config at INFO on each load
        return gx.get_context(mode="file", context_root_dir=str(self.context_root))

    def checkpoint(self, context: Any, suite: str, engine: str) -> Any:
        """The checkpoint ``<suite>.<engine>``, with an error that lists what the context holds."""
        name = checkpoint_name(suite, engine)
        try:
            return context.checkpoints.get(name)
        except Exception as err:
            known = sorted(c.name for c in context.checkpoints.all())
            raise LookupError(
                f"checkpoint '{name}' not found in {self.context_root}/checkpoints "
                f"(known: {', '.join(known) or 'none'}); create it with: mlops-ops gx scaffold {suite}"
            ) from err

    def test_connection(self) -> tuple[bool, str]:
        try:
            context = self.get_conn()
        except Exception as err:  # noqa: BLE001 - reported to the UI
            return False, f"{type(err).__name__}: {err}"
        return True, f"{len(context.suites.all())} suite(s) in {self.context_root}"


def _add_source(context: Any, engine: str) -> Any:
    """A dataframe data source for ``engine``, saved to the context without GX's connection test.

    ``add_spark`` tests a Spark data source by getting pyspark's current session: in a process without one it
    starts a local JVM (about 20 s) only to write configuration, and in one whose Spark Connect session the server
    closed it fails. The gate hands GX a dataframe from the Spark hook's session when it validates."""
    if engine == "pandas":
        return context.data_sources.add_pandas(datasource_name(engine))
    from great_expectations.datasource.fluent import SparkDatasource

    source = SparkDatasource(name=datasource_name(engine))
    source._data_context = context
    return context._add_fluent_datasource(datasource=source)


def scaffold(context: Any, suite: str) -> list[str]:
    """Create what a gate needs for ``suite`` (which must exist): a dataframe asset per engine,
    a validation definition and a checkpoint per engine. Idempotent; returns the checkpoint names."""
    gx = require("great_expectations", "gx")
    try:
        expectation_suite = context.suites.get(suite)
    except Exception as err:  # GX raises its own DataContextError subclasses here
        from mlops_ops.exceptions import MlopsOpsError

        known = sorted(s.name for s in context.suites.all())
        raise MlopsOpsError(
            f"no expectation suite '{suite}' in the context (suites: {', '.join(known) or 'none'}; "
            f"a suite is expectations/<name>.json)"
        ) from err
    names = []
    for engine in ENGINES:
        try:
            source = context.data_sources.get(datasource_name(engine))
        except (KeyError, ValueError, LookupError):
            source = _add_source(context, engine)
        try:
            asset = source.get_asset(suite)
        except LookupError:
            asset = source.add_dataframe_asset(suite)
        try:
            batch = asset.get_batch_definition("whole")
        except (KeyError, LookupError):
            batch = asset.add_batch_definition_whole_dataframe("whole")
        name = checkpoint_name(suite, engine)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=expectation_suite)
        )
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=["local_site"])],
                result_format="SUMMARY",
            )
        )
        names.append(name)
    return names
