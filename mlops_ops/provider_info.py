"""Airflow provider metadata (entry point ``apache_airflow_provider``), derived from the package's own source.

The lists are not written by hand: every module under ``operators/``, ``hooks/`` and ``triggers/`` that defines an
operator, hook or trigger class is listed, every hook class with a ``conn_type`` gives a connection type (its
``hook_name`` as the name), and every ``BaseOperatorLink`` subclass in the package is an extra link. The source is
read with :mod:`ast` (no module is imported, so provider discovery stays cheap and needs no optional extra).
``tests/unit/test_provider.py`` validates the result against the ``provider_info.schema.json`` that Airflow ships
and imports every class it names.
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from pathlib import Path
from typing import Any

from mlops_ops import __version__

PACKAGE = Path(__file__).resolve().parent

INTEGRATIONS: dict[str, dict[str, Any]] = {
    "mlops-ops lake": {"external-doc-url": "https://iceberg.apache.org/", "tags": ["software"]},
    "Apache Kafka (mlops-ops)": {"external-doc-url": "https://kafka.apache.org/", "tags": ["software"]},
    "Amazon S3 (mlops-ops)": {"external-doc-url": "https://aws.amazon.com/s3/", "tags": ["aws"]},
    "Apache Spark (mlops-ops)": {"external-doc-url": "https://spark.apache.org/", "tags": ["software"]},
    "Great Expectations": {"external-doc-url": "https://greatexpectations.io/", "tags": ["software"]},
    "MLflow": {"external-doc-url": "https://mlflow.org/", "tags": ["software"]},
    "Evidently": {"external-doc-url": "https://www.evidentlyai.com/", "tags": ["software"]},
    "OpenLineage (mlops-ops)": {"external-doc-url": "https://openlineage.io/", "tags": ["software"]},
}
# Which integration a module belongs to (by file name); any other module belongs to "mlops-ops lake".
MODULE_INTEGRATION = {
    "kafka": "Apache Kafka (mlops-ops)",
    "s3": "Amazon S3 (mlops-ops)",
    "spark": "Apache Spark (mlops-ops)",
    "gx": "Great Expectations",
    "mlflow": "MLflow",
    "train": "MLflow",
    "train_docker": "MLflow",
    "train_kubernetes": "MLflow",
    "evaluate": "MLflow",
    "approve": "MLflow",
    "drift": "Evidently",
    "openlineage": "OpenLineage (mlops-ops)",
}
DEFAULT_INTEGRATION = "mlops-ops lake"
KINDS = {"operators": "Operator", "hooks": "Hook", "triggers": "Trigger", "sensors": "Sensor"}


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def _string_attribute(node: ast.ClassDef, name: str) -> str | None:
    for item in node.body:
        target = item.targets[0] if isinstance(item, ast.Assign) and len(item.targets) == 1 else None
        if isinstance(item, ast.AnnAssign):
            target = item.target
        value = getattr(item, "value", None)
        if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Constant):
            return str(value.value)
    return None


def _classes(path: Path) -> list[ast.ClassDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node for node in tree.body if isinstance(node, ast.ClassDef)]


def _module(path: Path) -> str:
    return ".".join(("mlops_ops", *path.relative_to(PACKAGE).with_suffix("").parts))


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers get mlops-ops`` shows (a copy: callers may change it)."""
    return copy.deepcopy(_derived())


@cache
def _derived() -> dict[str, Any]:
    sections: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    connection_types: list[dict[str, str]] = []
    links: list[str] = []
    used: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module, classes = _module(path), _classes(path)
        links += [f"{module}.{c.name}" for c in classes if "BaseOperatorLink" in _base_names(c)]
        kind = path.parent.name if path.parent.parent == PACKAGE else None
        if kind not in KINDS:
            continue
        suffix = KINDS[kind]
        if not any(b.endswith(suffix) for c in classes for b in _base_names(c)):
            continue
        integration = MODULE_INTEGRATION.get(path.stem, DEFAULT_INTEGRATION)
        used.add(integration)
        sections[kind].append({"integration-name": integration, "python-modules": [module]})
        if kind == "hooks":
            for c in classes:
                conn_type = _string_attribute(c, "conn_type")
                if conn_type:
                    hook_class = f"{module}.{c.name}"
                    connection_types.append({"hook-class-name": hook_class, "connection-type": conn_type,
                                             "hook-name": _string_attribute(c, "hook_name") or c.name})  # fmt: skip
    info: dict[str, Any] = {
        "package-name": "mlops-ops",
        "name": "mlops-ops",
        "description": "MLOps operators and DAG factories: Kafka/S3 ingestion into an Iceberg lake, Spark features, "
        "Great Expectations gates, training on local/Docker/Kubernetes, MLflow evaluation, approval and promotion, "
        "Evidently drift checks.",
        "versions": [__version__],
        "integrations": [{"integration-name": name, **INTEGRATIONS[name]} for name in INTEGRATIONS if name in used],
        "connection-types": connection_types,
        "extra-links": links,
    }
    info.update({kind: entries for kind, entries in sections.items() if entries})
    return info
