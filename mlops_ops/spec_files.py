"""Finding spec files; kept free of pydantic and YAML so the DAG loader can list specs cheaply."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mlops_ops.exceptions import SpecError, SpecProblem

SPEC_SUFFIXES = (".yaml", ".yml")


def find_spec_files(folder: str | Path) -> list[Path]:
    """Spec files in ``folder`` (not recursive), sorted for a stable DAG order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())


def without_duplicates(files: list[Path]) -> tuple[list[Path], list[SpecError]]:
    """``files`` less those that name one pipeline twice (``churn.yaml`` beside ``churn.yml``: a pipeline is named
    after its file), with one error per such file naming the other. Neither is built: which one is meant is unknown,
    and building either would replace the other's DAGs without a word."""
    by_pipeline: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in files:
        by_pipeline[(path.parent, path.stem)].append(path)
    kept: list[Path] = []
    errors: list[SpecError] = []
    for path in files:
        same = by_pipeline[(path.parent, path.stem)]
        if len(same) == 1:
            kept.append(path)
            continue
        others = ", ".join(other.name for other in same if other != path)
        message = (f"pipeline '{path.stem}' is also defined by {others} in the same folder: one file per pipeline; "
                   "remove or rename one (neither is built until then)")  # fmt: skip
        errors.append(SpecError(str(path), [SpecProblem(field="pipeline", message=message, line=1)]))
    return kept, errors
