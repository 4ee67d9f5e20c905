"""Finding spec files; kept free of pydantic and YAML so the DAG loader can list specs cheaply."""

from __future__ import annotations

from pathlib import Path

SPEC_SUFFIXES = (".yaml", ".yml")


def find_spec_files(folder: str | Path) -> list[Path]:
    """Spec files in ``folder`` (not recursive), sorted for a stable DAG order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
