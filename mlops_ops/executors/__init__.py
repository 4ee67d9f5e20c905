"""Airflow executors of this library. ``[core] executor = mlops_ops.executors.local.WarmLocalExecutor`` (the
value of ``WARM_LOCAL_EXECUTOR``) is Airflow's LocalExecutor with the library's engines imported before its workers
fork (:mod:`mlops_ops.executors.local`); ``[celery] celery_config_options = CELERY_CONFIG_OPTIONS`` gives Celery
workers the same (:mod:`mlops_ops.executors.celery_workers`)."""

from __future__ import annotations

WARM_LOCAL_EXECUTOR = "mlops_ops.executors.local.WarmLocalExecutor"
CELERY_CONFIG_OPTIONS = "mlops_ops.executors.celery_workers.CELERY_CONFIG"
