"""Which code a spec may name, and the one loader of it.

A spec names code by dotted path (``package.module:function``): ``source.*.deserializer``, ``preprocess.transform``,
``train.trainer``, ``evaluate.custom_metrics.*.function``. Whoever edits a spec, or produces to a topic it reads,
must not be able to run arbitrary code on a worker through it. The trust model:

* **Never** (refused at parse and again at load, whatever the configuration): modules that evaluate, unpickle or
  spawn — ``builtins``, ``pickle``, ``os``, ``subprocess``, ``yaml``, ``marshal``, ``importlib`` ... (:data:`NEVER`).
* **Trusted by default**: ``mlops_ops`` itself, and modules that live in the deployment's DAGs or plugins folder (code
  Airflow runs anyway).
* **Trusted by configuration**: module prefixes listed in Airflow's ``[mlops_ops] allowed_callable_modules``
  (``AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES``, comma separated; ``team_ml`` admits ``team_ml`` and
  ``team_ml.*``). Anything else is refused when the spec is parsed, naming the setting.

The allow-list is checked where the spec is parsed (the DAG processor, ``mlops-ops validate``); the training
runtime, which runs without Airflow, checks the never-list when it loads the callable.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

NEVER = frozenset(
    {
        "__main__", "builtins", "__builtin__", "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib",
        "marshal", "shelve", "copyreg", "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "ctypes",
        "code", "codeop", "pty", "shutil", "socket", "multiprocessing", "concurrent", "asyncio", "signal", "yaml",
        "pdb", "webbrowser", "operator", "functools", "types", "inspect", "gc", "tempfile", "pathlib", "io", "airflow",
    }
)  # fmt: skip
SETTING = "[mlops_ops] allowed_callable_modules"
ENV_SETTING = "AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES"


class UntrustedCallableError(ValueError):
    """A dotted path names code the trust model refuses."""


def configured_modules() -> tuple[str, ...]:
    """The allow-list from Airflow's configuration (the environment variable first; no Airflow import needed)."""
    raw = os.environ.get(ENV_SETTING)
    if raw is None:
        try:
            from airflow.configuration import conf
        except ImportError:  # the training runtime: no Airflow, no configuration
            return ()
        raw = conf.get("mlops_ops", "allowed_callable_modules", fallback="") or ""
    return tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))


def _trusted_folders() -> list[Path]:
    try:
        from airflow.configuration import conf
    except ImportError:
        return []
    folders = [conf.get("core", "dags_folder", fallback=""), conf.get("core", "plugins_folder", fallback="")]
    return [Path(f).resolve() for f in folders if f]


def _in_trusted_folder(top: str) -> bool:
    try:
        found = importlib.util.find_spec(top)  # a top-level name: found on sys.path, not imported
    except (ImportError, ValueError):
        return False
    if found is None:
        return False
    folders = _trusted_folders()
    places = [found.origin, *(found.submodule_search_locations or [])]
    return any(Path(place).resolve().is_relative_to(folder) for place in filter(None, places) for folder in folders)


def _module_of(path: str) -> str:
    return path.split(":", 1)[0] if ":" in path else path.rsplit(".", 1)[0]


def never_problem(path: str) -> str | None:
    top = _module_of(path).split(".")[0]
    if top in NEVER:
        return (f"'{path}' is refused: module '{top}' can evaluate, unpickle or run programs, so a spec may never "
                "name it (not even through the allow-list)")  # fmt: skip
    return None


def trust_problem(path: str) -> str | None:
    """Why a spec may not name ``path`` (``None`` when it may)."""
    problem = never_problem(path)
    if problem:
        return problem
    module = _module_of(path)
    if module == "mlops_ops" or module.startswith("mlops_ops."):
        return None
    allowed = configured_modules()
    if any(module == prefix or module.startswith(prefix + ".") for prefix in allowed):
        return None
    if _in_trusted_folder(module.split(".")[0]):
        return None
    listed = ", ".join(allowed) or "nothing yet"
    return (f"module '{module}' is not trusted for spec callables: it is not part of mlops_ops or of the DAGs/plugins "
            f"folder, and {SETTING} lists {listed}; add it there ({ENV_SETTING}) if this code is yours")  # fmt: skip


def load_callable(path: str, *, field: str) -> Callable[..., Any]:
    """Import ``package.module:attribute`` for ``field`` (named in errors), refusing the never-list."""
    problem = never_problem(path)
    if problem:
        raise UntrustedCallableError(f"{field}: {problem}")
    module_name, _, attr = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{field} '{path}' cannot be imported: {err}") from err
    if not callable(target):
        raise ValueError(f"{field} '{path}' is not callable")
    return target  # type: ignore[no-any-return]
