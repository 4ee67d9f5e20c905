from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_ops.lake.tables import PipelineTables


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    """A real Iceberg SQL catalog on SQLite with its warehouse on this disk (no S3 needed for the protocol)."""
    from pyiceberg.catalog.sql import SqlCatalog

    (tmp_path / "wh").mkdir()
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/wh")


@pytest.fixture
def tables(catalog: Any) -> PipelineTables:
    return PipelineTables(catalog, "pipe")
