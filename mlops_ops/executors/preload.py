"""Import a list of modules once, in a process that forks the processes that need them (Airflow only to read the
setting).

A forked child inherits its parent's imported modules: a module imported before the fork costs the child nothing.
What to import is one setting, ``[mlops_ops] preload_modules`` (comma-separated; empty: none), whose default is
``DEFAULT_MODULES``: the engines this library's tasks import when they run (pandas, pyiceberg, MLflow,
scikit-learn, the Spark Connect client, Evidently, Great Expectations, matplotlib, OpenLineage's client). PyTorch
is left out of the default (2.6 s and 150 MB in a process that trains only some pipelines' models): add ``torch``
where the torch trainer runs in-process.

A module that is not installed (an extra left out) is skipped; one that fails to import is logged and skipped, so
a broken optional package never stops the process that preloads (the task that needs it fails with its own error).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

SETTING = ("mlops_ops", "preload_modules")
ENV_SETTING = "AIRFLOW__MLOPS_OPS__PRELOAD_MODULES"
DEFAULT_MODULES: tuple[str, ...] = (
    "pandas",
    "pyarrow.parquet",
    "pyiceberg.catalog.sql",
    "pyiceberg.io.pyarrow",
    "mlflow",
    "mlflow.pyfunc",
    "sklearn",
    "sklearn.ensemble",
    "pyspark.sql.connect.session",
    "evidently",
    "evidently.presets",
    "evidently.metrics",
    "great_expectations",
    "s3fs",
    "matplotlib.pyplot",
    "openlineage.client",
)
# libraries that log at INFO while they import (Great Expectations: a line per registered function)
_NOISY = ("great_expectations", "evidently", "mlflow")


def configured_modules(raw: str | None = None) -> tuple[str, ...]:
    """The modules to preload: ``raw`` if given, else the setting (Airflow's configuration, which reads
    ``AIRFLOW__MLOPS_OPS__PRELOAD_MODULES`` first), else ``DEFAULT_MODULES``. Order is kept; duplicates and blanks
    are dropped."""
    if raw is None:
        try:
            from airflow.configuration import conf
        except ImportError:
            return DEFAULT_MODULES
        raw = conf.get(*SETTING, fallback=None)
    if raw is None:
        return DEFAULT_MODULES
    names = [name.strip() for name in raw.split(",")]
    return tuple(dict.fromkeys(name for name in names if name))


def preload(modules: Iterable[str]) -> dict[str, float]:
    """Import ``modules`` in order; returns the seconds each imported one took (skipped ones are absent)."""
    took: dict[str, float] = {}
    with _quiet(_NOISY):
        for name in modules:
            start = time.perf_counter()
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name is not None and name.startswith(err.name):  # the module itself (or its package) is absent
                    log.debug("preload: %s is not installed, skipped", name)
                else:
                    log.warning("preload: %s needs %s, which is not installed; skipped", name, err.name)
                continue
            except Exception as err:  # noqa: BLE001 (a broken optional package must not stop the preloading process)
                log.warning("preload: importing %s failed (%s: %s); skipped", name, type(err).__name__, err)
                continue
            took[name] = time.perf_counter() - start
    return took


def preload_configured(logger: Any) -> dict[str, float]:
    """Preload the configured modules and log what was imported on ``logger`` (a stdlib or structlog logger: the
    executor's own ``log``); the line deployments and tests look for."""
    modules = configured_modules()
    took = preload(modules)
    logger.info("mlops-ops: preloaded %d of %d modules for task processes in %.1f s: %s", len(took), len(modules),
                sum(took.values()), ", ".join(took) or "none")  # fmt: skip
    return took


@contextmanager
def _quiet(loggers: Iterable[str]) -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in saved:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
