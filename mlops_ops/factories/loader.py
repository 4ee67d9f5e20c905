"""Turn every ``*.yaml`` spec in a folder into DAGs; used by one small file in ``dags/``.

When Airflow runs a task it sets the parsing context's ``dag_id``; the loader then
reads only the spec of that pipeline (spec files are named after their pipeline),
so a task never pays for parsing the other 999 specs.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import get_parsing_context

from mlops_ops.exceptions import MlopsOpsError, SpecError, StageNotSupportedError
from mlops_ops.factories.build import dag_from_plan
from mlops_ops.factories.plan_cache import plans_for
from mlops_ops.naming import pipeline_of_dag_id
from mlops_ops.spec_files import SPEC_SUFFIXES, find_spec_files, without_duplicates


class PipelineLoadError(MlopsOpsError):
    """One or more spec files are invalid; the message lists each file, line and field."""

    def __init__(self, errors: list[Exception], loaded: list[str]) -> None:
        self.errors = errors
        head = f"{len(errors)} pipeline spec file(s) could not be turned into DAGs"
        held = f" (the DAGs of the valid specs in this folder are held back until fixed: {', '.join(loaded)})"
        super().__init__(head + (held if loaded else "") + ":\n" + "\n".join(str(e) for e in errors))


def load_pipelines(
    target: MutableMapping[str, Any],
    folder: str | Path,
    *,
    on_error: Literal["raise", "skip"] = "raise",
) -> list[str]:
    """Build the DAGs of every spec in ``folder`` into ``target`` (a DAG file's ``globals()``).

    ``on_error="raise"`` (default) fails the DAG file with one error naming every bad spec,
    file, line and field, so Airflow lists it under *Import errors*; Airflow then marks every
    DAG of that file stale, so the valid specs' DAGs pause until the bad file is fixed.
    ``"skip"`` logs bad specs and keeps the others running; pair it with a second DAG file
    calling :func:`report_spec_errors` to still get the import error (what ``dags/`` does).
    """
    folder = Path(folder)
    files = find_spec_files(folder)
    running = get_parsing_context().dag_id
    pipeline = pipeline_of_dag_id(running) if running else None
    if pipeline is not None:
        files = [f for f in files if f.stem == pipeline] or files
    files, duplicates = without_duplicates(files)
    errors: list[Exception] = list(duplicates)
    loaded: list[str] = []
    for path in files:
        try:
            dags = [dag_from_plan(plan) for plan in plans_for(path)]
        except (SpecError, StageNotSupportedError) as err:
            errors.append(err)
            continue
        for dag in dags:
            target[dag.dag_id] = dag
            loaded.append(dag.dag_id)
    if errors:
        if on_error == "raise":
            raise PipelineLoadError(errors, loaded)
        import logging

        for problem in errors:
            logging.getLogger(__name__).error("skipping invalid pipeline spec: %s", problem)
    return loaded


def report_spec_errors(folder: str | Path) -> None:
    """Raise one :class:`PipelineLoadError` naming every invalid spec in ``folder``; build nothing.

    Meant for a DAG file of its own beside a loader that uses ``on_error="skip"``: Airflow
    then shows the import error on this file while the valid pipelines keep running.
    Valid specs come from the plan cache, so this costs little beyond listing the folder.
    """
    if get_parsing_context().dag_id is not None:
        return  # a task run parses only its own DAG's file; nothing to report there
    files, duplicates = without_duplicates(find_spec_files(Path(folder)))
    errors: list[Exception] = list(duplicates)
    for path in files:
        try:
            plans_for(path)
        except (SpecError, StageNotSupportedError) as err:
            errors.append(err)
    if errors:
        raise PipelineLoadError(errors, [])


def check_spec_files(paths: list[Path], *, deep: bool = False, connections: bool | None = None) -> list[str]:
    """Validate specs and build their DAGs without running anything; return one ``file:line: field: problem`` line
    per problem. ``deep``: also what the first run would fail on (:mod:`mlops_ops.spec_checks`: imports and
    signatures, GX suites and columns, SQL, connections)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += find_spec_files(path)
        elif path.suffix in SPEC_SUFFIXES:
            files.append(path)
        else:
            return [f"{path}: not a spec file or folder (expected {' or '.join(SPEC_SUFFIXES)})"]
    from mlops_ops.factories.pipeline import build_dags
    from mlops_ops.spec_loader import load_spec

    files, duplicates = without_duplicates(files)
    problems = [_located(Path(e.source), p.line, p.field, p.render_message()) for e in duplicates for p in e.problems]
    for path in files:
        try:
            spec = load_spec(path)
            for dag in build_dags(spec, source=path):
                dag.validate()
            if deep:
                from mlops_ops.spec_checks import deep_problems
                from mlops_ops.spec_loader import spec_node

                found = deep_problems(spec, path, spec_node(path), connections=connections)
                problems += [_located(path, p.line, p.field, p.message) for p in found]
        except SpecError as err:
            problems += [_located(path, p.line, p.field, p.render_message()) for p in err.problems]
        except MlopsOpsError as err:
            problems.append(f"{path}: {err}")
    return problems


def _located(path: Path, line: int | None, field: str, message: str) -> str:
    return f"{path}:{line or 1}: {field}: {message}"
