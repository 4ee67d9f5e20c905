"""Stack settings: a settings file of an earlier version keeps its ports and gains the new ones; the Spark
connection names the stack's Spark Connect server, or the cluster when it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlops_ops.stack.config import PORT_NAMES, SPARK_PORT_NAMES, StackPaths, load_settings, spark_connection


def test_an_older_settings_file_keeps_its_ports_and_gains_the_spark_ones(tmp_path: Path) -> None:
    paths = StackPaths(home=tmp_path, project=tmp_path)
    old = {name: 40_000 + i for i, name in enumerate(n for n in PORT_NAMES if n not in SPARK_PORT_NAMES)}
    paths.settings_file.write_text(json.dumps({"ports": old, "s3_access_key": "k", "s3_secret_key": "s"}))
    settings = load_settings(paths, create=False)
    assert settings is not None and not settings.spark_cluster
    assert {k: settings.ports[k] for k in old} == old and set(settings.ports) == set(PORT_NAMES)
    assert json.loads(paths.settings_file.read_text())["ports"] == settings.ports  # saved


def test_the_spark_connection_names_the_cluster_only_when_it_runs(tmp_path: Path) -> None:
    paths = StackPaths(home=tmp_path, project=tmp_path)
    settings = load_settings(paths, create=True)
    assert settings is not None
    assert spark_connection(settings) == {
        "conn_type": "spark",
        "host": "sc://127.0.0.1",  # the warm server
        "port": settings.ports["spark_connect"],
        "extra": {"shared_filesystem": True},
    }
    settings.spark_cluster = True
    conn = spark_connection(settings)
    assert conn["host"] == "spark://127.0.0.1" and conn["port"] == settings.ports["spark_master"]
    assert conn["extra"]["shared_filesystem"] is True  # type: ignore[index]


def test_state_folders_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "state"
    (home / "logs").mkdir(parents=True)
    (home / "logs").chmod(0o755)  # left wide by an earlier version: tightened
    paths = StackPaths(home, tmp_path)
    paths.ensure()
    load_settings(paths, create=True)  # writing the settings file keeps the modes
    for folder in (home / "pids", home / "logs", home / "airflow"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    # as root, PostgreSQL runs as nobody: it may pass through the state folder and data/ to its own 0700 folder
    passage = 0o711 if os.geteuid() == 0 else 0o700
    assert home.stat().st_mode & 0o777 == passage and (home / "data").stat().st_mode & 0o777 == passage
