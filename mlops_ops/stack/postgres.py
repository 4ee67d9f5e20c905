"""PostgreSQL as Airflow's metadata database in the embedded stack (``stack up --postgres``).

Debian's server binaries (``apt-get install postgresql``; ``/usr/lib/postgresql/<major>/bin``), a cluster made by
``initdb`` under ``<home>/data/postgres`` with a generated password (SCRAM), listening on 127.0.0.1 only (no unix
socket). PostgreSQL refuses to run as root: as root, the cluster belongs to and runs as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from mlops_ops.exceptions import StackError
from mlops_ops.stack.config import StackPaths, StackSettings

DATABASE = "airflow"
USER = "airflow"
RUN_AS = "nobody"  # when started by root


def server_bin() -> Path:
    """The newest Debian PostgreSQL server's bin folder."""
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if roots:
        return roots[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise StackError("the PostgreSQL server is not installed: apt-get install postgresql (Debian's binaries)")


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", f"--reuid={RUN_AS}", "--regid=nogroup", "--clear-groups", "--", *command]


def database_url(settings: StackSettings) -> str:
    return (f"postgresql+psycopg2://{USER}:{quote(settings.postgres_password, safe='')}@127.0.0.1:"
            f"{settings.ports['postgres']}/{DATABASE}")  # fmt: skip


def initialize(paths: StackPaths, settings: StackSettings) -> Path:
    """``initdb`` once (superuser ``airflow`` with the settings' password) and create the database ``airflow``."""
    data = paths.home / "data" / "postgres"
    if (data / "PG_VERSION").exists():
        return data
    data.mkdir(parents=True, exist_ok=True)
    pwfile = paths.home / "data" / ".postgres-password"
    pwfile.write_text(settings.postgres_password + "\n")
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(data, RUN_AS, "nogroup")
        shutil.chown(pwfile, RUN_AS, "nogroup")
    data.chmod(0o700)
    log = paths.logfile("postgres-init")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            initdb = [str(server_bin() / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                      "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"]  # fmt: skip
            single = [str(server_bin() / "postgres"), "--single", "-D", str(data), "postgres"]
            steps = [(_as_owner(initdb), None), (_as_owner(single), f"CREATE DATABASE {DATABASE};\n".encode())]
            for command, stdin in steps:
                done = subprocess.run(command, input=stdin, stdout=out, stderr=subprocess.STDOUT, check=False,
                                      cwd="/")  # fmt: skip
                if done.returncode != 0:
                    shutil.rmtree(data, ignore_errors=True)
                    raise StackError(f"PostgreSQL set-up failed ({command[-1]}); see {log}")
    finally:
        pwfile.unlink(missing_ok=True)
    return data


def command(paths: StackPaths, settings: StackSettings) -> list[str]:
    data = initialize(paths, settings)
    return _as_owner([str(server_bin() / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                      "-p", str(settings.ports["postgres"]), "-c", "unix_socket_directories=",
                      "-c", "max_connections=200", "-c", "fsync=on"])  # fmt: skip


def check(settings: StackSettings) -> None:
    try:
        import psycopg2
    except ImportError as err:
        raise StackError("Airflow on PostgreSQL needs the driver: pip install 'mlops-ops[postgres]'") from err
    conn = psycopg2.connect(host="127.0.0.1", port=settings.ports["postgres"], user=USER,
                            password=settings.postgres_password, dbname=DATABASE, connect_timeout=2)  # fmt: skip
    conn.close()
