"""Airflow executors of this library. ``[core] executor = mlops_ops.executors.local.WarmLocalExecutor`` (the
value of ``WARM_LOCAL_EXECUTOR``) is Airflow's LocalExecutor with the library's engines imported before its workers
fork (:mod:`mlops_ops.executors.local`)."""

from __future__ import annotations

WARM_LOCAL_EXECUTOR = "mlops_ops.executors.local.WarmLocalExecutor"
