"""Where a secret could leak in an Airflow deployment, read as text, and the scan of those texts for sentinels.

Shared by the tests that run Airflow's real processes with sentinel passwords in their connections
(``tests/reliability/test_airflow_faults.py``, ``tests/integration/test_docker_training.py``).
"""

from __future__ import annotations

from typing import Any

# what tasks and runs leave in the metadata database that a user can read through the UI or the REST API
METADATA_QUERIES = {
    "xcom": "SELECT value FROM xcom",
    "rendered fields": "SELECT rendered_fields FROM rendered_task_instance_fields",
    "run conf": "SELECT conf FROM dag_run",
}


def metadata_texts(database_url: str) -> dict[str, str]:
    """XCom values, rendered template fields and run confs from an Airflow metadata database (SQLite or
    PostgreSQL), each as one text."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                where: "\n".join(str(value) for (value,) in connection.execute(text(query)))
                for where, query in METADATA_QUERIES.items()
            }
    finally:
        engine.dispose()


def found(texts: dict[str, Any], secrets: dict[str, str]) -> list[str]:
    """``"<secret name> in <where>"`` for every secret found in a text."""
    return [f"{name} in {where}" for where, text in texts.items() for name, secret in secrets.items() if secret in text]
