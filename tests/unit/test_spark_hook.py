from __future__ import annotations

import json
import os

import pytest

from mlops_ops.hooks.spark import CLUSTER_CONF, LOCAL_CONF, SparkHook, options_for


def test_no_connection_means_local_session_with_ui_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT", raising=False)
    options = SparkHook(app_name="x").session_options()
    assert options.master == "local[*]" and options.remote is None and options.is_local
    assert options.conf == LOCAL_CONF
    assert options.conf["spark.ui.enabled"] == "false" and options.conf["spark.driver.memory"] == "4g"


def test_standalone_cluster_from_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "mlops_spark", "host": "spark://spark-master.data", "port": 7077,
            "extra": {"conf": {"spark.executor.memory": "8g", "spark.hadoop.fs.s3a.secret.key": "s3cr3t"}}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_PROD", json.dumps(conn))
    options = SparkHook("spark_prod", app_name="mlops-ops-churn").session_options()
    assert options.app_name == "mlops-ops-churn"
    assert options.master == "spark://spark-master.data:7077" and not options.is_local
    assert options.conf == {**CLUSTER_CONF, "spark.executor.memory": "8g", "spark.hadoop.fs.s3a.secret.key": "s3cr3t"}
    assert options.redacted()["conf"]["spark.hadoop.fs.s3a.secret.key"] == "***"
    assert "s3cr3t" not in str(options.redacted())


@pytest.mark.parametrize(
    ("host", "port", "master", "remote"),
    [
        ("yarn", None, "yarn", None),
        ("k8s://https://kube.example:6443", None, "k8s://https://kube.example:6443", None),
        ("sc://connect.example", None, None, "sc://connect.example:15002"),
        ("sc://connect.example", 443, None, "sc://connect.example:443"),
        ("local[2]", None, "local[2]", None),
    ],
)
def test_cluster_managers(host: str, port: int | None, master: str | None, remote: str | None) -> None:
    options = options_for(host, port, {}, "app")
    assert (options.master, options.remote) == (master, remote)


def test_unknown_host_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"use local\[N\], spark://host, yarn, k8s://https://host or sc://host"):
        options_for("mesos://old", None, {}, "app")


def test_a_cluster_on_this_machine_stages_files_locally_and_a_remote_one_does_not() -> None:
    assert options_for(None, None, {}, "a").stages_locally
    assert options_for("spark://127.0.0.1", 7077, {"shared_filesystem": True}, "a").stages_locally
    remote = options_for("spark://spark.internal", 7077, {}, "a")
    assert not remote.stages_locally and remote.master == "spark://spark.internal:7077"
    warm = options_for("sc://127.0.0.1", 15010, {"shared_filesystem": True}, "a")  # the embedded stack's server
    assert warm.stages_locally and warm.remote == "sc://127.0.0.1:15010" and warm.conf == {}
    assert not options_for("sc://connect.internal", None, {}, "a").stages_locally


def test_an_inherited_connect_mode_is_dropped_before_a_classic_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task process started by a process that used Spark Connect inherits pyspark's mode variable; without a
    Connect session of its own it builds a classic session (pyspark would refuse: CONNECT_URL_NOT_SET)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from mlops_ops.hooks import spark as hook_module

    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    monkeypatch.setattr(ConnectSession, "_default_session", None)
    hook_module._leave_connect_mode()
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ

    class Live:
        is_stopped = False

    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    monkeypatch.setattr(ConnectSession, "_default_session", Live())
    with pytest.raises(RuntimeError, match="already holds a Spark Connect session"):
        hook_module._leave_connect_mode()
