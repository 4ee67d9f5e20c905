"""PostgreSQL as Airflow's metadata DB in the embedded stack: the URL, who runs the server, the missing-binary error.
(tests/integration/test_celery.py and `make demo` run it for real.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_ops.stack import postgres
from mlops_ops.stack.config import StackPaths, StackSettings, stack_environment


def _settings(**kw: object) -> StackSettings:
    settings = StackSettings.create()
    for key, value in kw.items():
        setattr(settings, key, value)
    return settings


def test_airflow_database_follows_the_setting(tmp_path: Path) -> None:
    paths = StackPaths(home=tmp_path, project=tmp_path)
    sqlite = stack_environment(paths, _settings())["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert sqlite.startswith("sqlite:///") and sqlite.endswith("?timeout=60")
    settings = _settings(postgres=True, postgres_password="p@ss/wörd")
    url = stack_environment(paths, settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url == f"postgresql+psycopg2://airflow:p%40ss%2Fw%C3%B6rd@127.0.0.1:{settings.ports['postgres']}/airflow"
    assert len(StackSettings.create().postgres_password) >= 20  # generated per stack


def test_server_never_runs_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert postgres._as_owner(["postgres", "-D", "x"])[:2] == ["setpriv", "--reuid=nobody"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert postgres._as_owner(["postgres"]) == ["postgres"]


def test_missing_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_ops.exceptions import StackError

    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(()))
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match="apt-get install postgresql"):
        postgres.server_bin()
