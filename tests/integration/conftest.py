"""The embedded stack as a session fixture: real Kafka (Tansu), S3 (SeaweedFS) and MLflow.

``stack`` is the ``mlops_stack`` fixture of the package's own pytest plugin (the one users get),
under ``.mlops/test`` (``MLOPS_OPS_HOME``, set in ``tests/conftest.py``).
"""

from __future__ import annotations

import uuid

import pytest

from mlops_ops.stack import EmbeddedStack


@pytest.fixture(scope="session")
def stack(mlops_stack: EmbeddedStack) -> EmbeddedStack:
    return mlops_stack


@pytest.fixture
def bootstrap(stack: EmbeddedStack) -> str:
    return f"127.0.0.1:{stack.settings.ports['kafka']}"


@pytest.fixture
def topic(bootstrap: str) -> str:
    """A fresh topic with 3 partitions."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=3)])[name].result(10)
    return name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
