"""The team's own test configuration: the gallery's specs name code in ``gallery_lib`` (transforms, a trainer, a
metric), so it is trusted for spec callables here, as a deployment lists it in Airflow's
``[mlops_ops] allowed_callable_modules`` (see docs/security.md)."""

from __future__ import annotations

import os

os.environ.setdefault("AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES", "gallery_lib")
