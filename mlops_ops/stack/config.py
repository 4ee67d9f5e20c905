"""Where the embedded stack keeps its state, which ports it uses, and the environment it exports."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlops_ops.lake.tables import pyiceberg_env
from mlops_ops.stack.process import pick_free_ports

LAKE_BUCKET = "mlops-lake"
MLFLOW_BUCKET = "mlops-mlflow"
LANDING_BUCKET = "mlops-landing"  # where the example pipelines' source files land
BUCKETS = (LAKE_BUCKET, MLFLOW_BUCKET, LANDING_BUCKET)
S3_REGION = "us-east-1"
ICEBERG_CATALOG = "mlops"
# SeaweedFS `weed mini` opens one HTTP and one gRPC port per component; we pin them all.
S3_PORT_NAMES = (
    "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
    "s3", "s3_grpc", "admin", "admin_grpc", "webdav",
)  # fmt: skip
SPARK_WORKERS = 2
SPARK_PORT_NAMES = ("spark_master", "spark_master_ui", *(f"spark_worker{i}_ui" for i in range(1, SPARK_WORKERS + 1)))
PORT_NAMES = ("kafka", "mlflow", *(f"weed_{n}" for n in S3_PORT_NAMES), *SPARK_PORT_NAMES, "postgres", "spark_connect")


def default_home() -> Path:
    return Path(os.environ.get("MLOPS_OPS_HOME", ".mlops")).resolve()


@dataclass
class StackSettings:
    """Persisted in ``<home>/stack.json`` so the ports and keys stay stable across ``up``/``down``."""

    ports: dict[str, int]
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    spark_cluster: bool = False  # a Spark standalone master and workers on loopback (``stack up --spark-cluster``)
    postgres: bool = False  # Airflow's metadata DB on PostgreSQL instead of SQLite (``stack up --postgres``)
    postgres_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)

    @classmethod
    def create(cls) -> StackSettings:
        overrides = {name: int(os.environ[f"MLOPS_OPS_{name.upper()}_PORT"]) for name in PORT_NAMES
                     if f"MLOPS_OPS_{name.upper()}_PORT" in os.environ}  # fmt: skip
        free = iter(pick_free_ports(len(PORT_NAMES) - len(overrides), taken=set(overrides.values())))
        ports = {name: overrides.get(name) or next(free) for name in PORT_NAMES}
        return cls(ports=ports, s3_access_key="mlops" + secrets.token_hex(4), s3_secret_key=secrets.token_urlsafe(24))


@dataclass(frozen=True)
class StackPaths:
    home: Path
    project: Path

    @property
    def settings_file(self) -> Path:
        return self.home / "stack.json"

    def pidfile(self, service: str) -> Path:
        return self.home / "pids" / f"{service}.pid"

    def logfile(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def data(self, service: str) -> Path:
        path = self.home / "data" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def ensure(self) -> None:
        """The state folder and its parts, readable by their owner only (0700): they hold the stack's passwords,
        Airflow's database and JWT secret, the lake and the services' logs. Run as root, the PostgreSQL server runs
        as ``nobody`` and must reach its own 0700 folder ``data/postgres``: the state folder and ``data`` are then
        0711 (others may pass through, not list or read)."""
        passage = os.geteuid() == 0
        private_folder(self.home, traverse=passage)
        for sub in ("pids", "logs", "data", "airflow"):
            private_folder(self.home / sub, traverse=passage and sub == "data")


def private_folder(path: Path, *, traverse: bool = False) -> Path:
    """``path`` created if missing, with mode 0700 (0711 with ``traverse``), also when it existed with another."""
    mode = 0o711 if traverse else 0o700
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    path.chmod(mode)
    return path


def load_settings(paths: StackPaths, *, create: bool) -> StackSettings | None:
    try:
        raw = json.loads(paths.settings_file.read_text())
        settings = StackSettings(**raw)
        missing = [name for name in PORT_NAMES if name not in settings.ports]
        if missing and set(settings.ports) <= set(PORT_NAMES):  # written by an earlier version: keep its ports
            free = iter(pick_free_ports(len(missing), taken=set(settings.ports.values())))
            settings.ports.update({name: next(free) for name in missing})
            save_settings(paths, settings)
        if set(settings.ports) == set(PORT_NAMES):
            return settings
    except (OSError, ValueError, TypeError):
        pass
    if not create:
        return None
    settings = StackSettings.create()
    save_settings(paths, settings)
    return settings


def save_settings(paths: StackPaths, settings: StackSettings) -> None:
    paths.ensure()
    tmp = paths.settings_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2))
    tmp.chmod(0o600)
    tmp.replace(paths.settings_file)


def stack_environment(paths: StackPaths, settings: StackSettings) -> dict[str, str]:
    """Variables that point Airflow, MLflow, Spark and the library at the embedded stack."""
    p = settings.ports
    s3_endpoint = f"http://127.0.0.1:{p['weed_s3']}"
    airflow_home = paths.airflow_home
    env = {
        "MLOPS_OPS_HOME": str(paths.home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_database(paths, settings),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": f"127.0.0.1:{p['kafka']}"}}
        ),
        # the control-topic watcher's consumer (its group id comes from the connection)
        "AIRFLOW_CONN_KAFKA_CONTROL": json.dumps(
            {
                "conn_type": "kafka",
                "extra": {
                    "bootstrap.servers": f"127.0.0.1:{p['kafka']}",
                    "group.id": "mlops-ops.control",
                    "auto.offset.reset": "earliest",
                    # the shared-stream consumer commits only after the Asset event is stored
                    "enable.auto.commit": "false",
                },
            }
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": settings.s3_access_key,
                "password": settings.s3_secret_key,
                "extra": {"endpoint_url": s3_endpoint, "region_name": S3_REGION},
            }
        ),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
            {"conn_type": "mlflow", "host": "127.0.0.1", "port": p["mlflow"], "schema": "http"}
        ),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(spark_connection(settings)),
        "AIRFLOW_VAR_MLOPS_OPS_LAKE": f"s3://{LAKE_BUCKET}/lake",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{p['mlflow']}",
    }
    catalog = iceberg_properties(paths, settings)
    env["AIRFLOW_CONN_ICEBERG_DEFAULT"] = json.dumps({"conn_type": "iceberg", "extra": catalog})
    # pyiceberg's own variables: any pyiceberg user (a notebook, another tool) reads the lake with load_catalog()
    env.update(pyiceberg_env(ICEBERG_CATALOG, catalog))
    return env


def airflow_database(paths: StackPaths, settings: StackSettings) -> str:
    """PostgreSQL when the stack runs it, else SQLite (a writer waits up to 60 s for its lock: the scheduler, API
    server and tasks all write)."""
    if settings.postgres:
        from mlops_ops.stack.postgres import database_url

        return database_url(settings)
    return f"sqlite:///{paths.airflow_home / 'airflow.db'}?timeout=60"


def spark_connection(settings: StackSettings) -> dict[str, object]:
    """The stack's Spark Connect server (warm: no task starts a JVM), or its standalone cluster when that runs. Both
    run on this machine, so Spark reads and writes through local scratch folders (``shared_filesystem``) as local
    mode does: pyspark ships no S3 connector."""
    if not settings.spark_cluster:
        return {"conn_type": "spark", "host": "sc://127.0.0.1", "port": settings.ports["spark_connect"],
                "extra": {"shared_filesystem": True}}  # fmt: skip
    conf = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false",
            "spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.cores.max": str(SPARK_WORKERS),
            "spark.sql.shuffle.partitions": "8"}  # fmt: skip
    return {"conn_type": "spark", "host": "spark://127.0.0.1", "port": settings.ports["spark_master"],
            "extra": {"shared_filesystem": True, "conf": conf}}  # fmt: skip


def iceberg_properties(paths: StackPaths, settings: StackSettings) -> dict[str, str]:
    """The lake's Iceberg catalog: SQL catalog on SQLite under the stack's home, data files on its S3."""
    return {
        "type": "sql",
        "uri": f"sqlite:///{paths.data('iceberg') / 'catalog.db'}",
        "warehouse": f"s3://{LAKE_BUCKET}/warehouse",
        "s3.endpoint": f"http://127.0.0.1:{settings.ports['weed_s3']}",
        "s3.access-key-id": settings.s3_access_key,
        "s3.secret-access-key": settings.s3_secret_key,
        "s3.region": S3_REGION,
    }


def render_exports(env: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))
