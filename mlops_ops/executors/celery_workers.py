"""Celery workers whose task processes start with this library's engines imported.

Set ``[celery] celery_config_options = mlops_ops.executors.celery_workers.CELERY_CONFIG`` (Airflow's own Celery
settings, unchanged: ``CELERY_CONFIG`` is the provider's ``DEFAULT_CELERY_CONFIG``). Importing this module connects
a handler to Celery's ``worker_init`` signal, which an ``airflow celery worker`` sends in its main process before it
starts its pool: the handler imports ``[mlops_ops] preload_modules`` there (:mod:`mlops_ops.executors.preload`), the
prefork pool's processes fork from it, and each task's process forks from one of those, so every task inherits
the imports, as with :class:`~mlops_ops.executors.local.WarmLocalExecutor`. The scheduler, which imports this
module too to configure its Celery client, sends no ``worker_init`` and preloads nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

from mlops_ops.executors.preload import preload_configured

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def preload_in_worker(**_: Any) -> dict[str, float]:
    """Import the configured modules; returns the seconds each took (what ``preload`` returns)."""
    return preload_configured(log)
