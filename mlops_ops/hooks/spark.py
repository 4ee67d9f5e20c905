"""Hook for Spark: a local session by default, a real cluster when ``spark_default`` names one.

All Spark settings are made here, in one place:

* no connection (or host ``local[...]``): ``local[*]`` in this process, UI off, driver
  memory sized for a 24 GiB machine, few shuffle partitions;
* host ``spark://h`` (port 7077), ``yarn``, ``k8s://https://...``: the same session in
  client mode against that cluster manager;
* host ``sc://h`` (port 15002): Spark Connect, a session on a long-running server (the embedded stack runs
  one): no JVM in the task, so a task's Spark work starts in about a second instead of a cold JVM's 20.
  ``extra.shared_filesystem`` says the server runs on this machine (it reads and writes the task's scratch
  folders, as local mode does).

A Python process holds sessions of one kind: pyspark keeps classic (JVM) and Connect sessions apart by the
variable ``SPARK_CONNECT_MODE_ENABLED``, which a Connect session sets for the process. A process that inherited
it from a parent (a test session, a scheduler started from one) and has no Connect session of its own drops it
before it builds a classic session; one that holds a Connect session gets a clear error instead of pyspark's.

``extra`` may hold ``{"conf": {...}}`` with any ``spark.*`` settings; they override the
defaults. :meth:`SparkHook.session_options` is what a session is built from, so a test
can assert the exact settings for a cluster without one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseHook

from mlops_ops._extras import require
from mlops_ops.spark_conf import CLUSTER_CONF, CONNECT_PORT, LOCAL_CONF

SECRET_HINTS = ("secret", "password", "token", "key")


@dataclass(frozen=True)
class SparkSessionOptions:
    """What a session is built from: ``master`` or ``remote`` (Spark Connect), plus conf."""

    app_name: str
    master: str | None = None
    remote: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    shared_filesystem: bool = False  # the executors run on this machine (a cluster on loopback)

    @property
    def is_local(self) -> bool:
        return self.remote is None and (self.master or "").startswith("local")

    @property
    def stages_locally(self) -> bool:
        """Spark reads and writes lake files through local scratch folders (local mode, or executors on this
        machine); otherwise the cluster reaches the lake's S3 itself (``s3a://``, hadoop-aws on the cluster)."""
        return self.is_local or self.shared_filesystem

    def redacted(self) -> dict[str, Any]:
        """For logs: values of settings whose name looks secret are masked."""
        conf = {k: ("***" if any(h in k.lower() for h in SECRET_HINTS) else v) for k, v in self.conf.items()}
        return {"app_name": self.app_name, "master": self.master, "remote": self.remote, "conf": conf}


def options_for(host: str | None, port: int | None, extra: dict[str, Any], app_name: str) -> SparkSessionOptions:
    """Session options for a connection's host/port/extra (no connection: ``host=None``)."""
    user_conf = {str(k): str(v) for k, v in (extra.get("conf") or {}).items()}
    host = (host or "").strip()
    if not host or host.startswith("local"):
        master = host or f"local[{extra.get('cores', '*')}]"
        return SparkSessionOptions(app_name, master=master, conf={**LOCAL_CONF, **user_conf})
    shared = bool(extra.get("shared_filesystem", False))
    if host.startswith("sc://"):
        return SparkSessionOptions(app_name, remote=f"{host}:{port or CONNECT_PORT}", conf=user_conf,
                                   shared_filesystem=shared)  # fmt: skip
    if host.startswith("spark://"):
        master = f"{host}:{port or 7077}"
    elif host == "yarn" or host.startswith("k8s://"):
        master = host if port is None or host == "yarn" else f"{host}:{port}"
    else:
        raise ValueError(
            f"Spark connection host '{host}' is not supported: use local[N], spark://host, yarn, "
            "k8s://https://host or sc://host (Spark Connect)"
        )
    return SparkSessionOptions(app_name, master=master, conf={**CLUSTER_CONF, **user_conf}, shared_filesystem=shared)


class SparkHook(BaseHook):
    """Builds (or reuses) the Spark session for ``spark_conn_id``; no connection means local mode."""

    conn_name_attr = "spark_conn_id"
    default_conn_name = "spark_default"
    conn_type = "mlops_spark"
    hook_name = "Spark (mlops-ops session)"

    def __init__(self, spark_conn_id: str = default_conn_name, *, app_name: str = "mlops-ops") -> None:
        super().__init__()
        self.spark_conn_id = spark_conn_id
        self.app_name = app_name

    def session_options(self) -> SparkSessionOptions:
        from mlops_ops._compat import airflow_exception

        AirflowNotFoundException = airflow_exception("AirflowNotFoundException")

        try:
            conn = self.get_connection(self.spark_conn_id)
        except AirflowNotFoundException:
            return options_for(None, None, {}, self.app_name)
        return options_for(conn.host, conn.port, conn.extra_dejson, self.app_name)

    def get_conn(self) -> Any:
        """The ``SparkSession`` (``getOrCreate``: tasks in one process share it)."""
        options = self.session_options()
        self.log.info("Spark session: %s", options.redacted())
        return session(options)

    def test_connection(self) -> tuple[bool, str]:
        try:
            spark = self.get_conn()
            got = spark.range(3).count()
        except Exception as err:  # noqa: BLE001 - reported to the UI, not raised
            return False, f"{type(err).__name__}: {err}"
        return got == 3, f"Spark {spark.version} answered"


def session(options: SparkSessionOptions) -> Any:
    """A session built from ``options`` (``getOrCreate``)."""
    require("pyspark", "spark")
    from pyspark.sql import SparkSession

    if options.remote:
        builder = SparkSession.builder.appName(options.app_name).remote(options.remote)
    else:
        _leave_connect_mode()
        if options.stages_locally:  # executors on this machine run this interpreter's Python workers
            os.environ.setdefault("PYSPARK_PYTHON", _python())
        builder = SparkSession.builder.appName(options.app_name).master(options.master or "local[*]")
    for key, value in options.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if options.remote:
        _make_current(spark)
    return spark


def _make_current(spark: Any) -> None:
    """Make a Connect session the process's default and active one, as a first session is.

    pyspark makes a new Connect session current only where no session was current before; a session the server
    closed (it restarted: ``INVALID_HANDLE.SESSION_CHANGED``) stays current though stopped, so the new one would
    not be, and a library that asks pyspark for "the" session (Great Expectations' Spark engine, pyspark's own
    functions) would find none and fail with ``CONNECT_URL_NOT_SET`` or ``NO_ACTIVE_SESSION``."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    with ConnectSession._lock:
        if ConnectSession._get_default_session() is None:
            ConnectSession._default_session = spark
    if ConnectSession.getActiveSession() is None:
        ConnectSession._active_session.session = spark


def stop_connect_sessions() -> None:
    """Stop this process's current Spark Connect session, before the server it talks to stops.

    pyspark cleans up every open Connect client when the interpreter exits, retrying against a server that is gone
    for up to ten minutes; a stopped session has nothing left to clean. A no-op where pyspark was never imported."""
    import sys

    if "pyspark.sql.connect.session" not in sys.modules:
        return
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    for current in (ConnectSession.getActiveSession(), ConnectSession._get_default_session()):
        if current is not None:
            current.stop()


def _leave_connect_mode() -> None:
    """Before a classic session: drop a Spark Connect mode this process inherited (see the module's doc)."""
    if "SPARK_CONNECT_MODE_ENABLED" not in os.environ:
        return
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    if ConnectSession._get_default_session() is not None:
        raise RuntimeError(
            "this process already holds a Spark Connect session; pyspark cannot build a classic (local or cluster) "
            "session beside it: use one kind of Spark connection per process"
        )
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def _python() -> str:
    import sys

    return sys.executable
