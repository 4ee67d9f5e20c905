from __future__ import annotations

import pytest


def test_the_config_is_airflows_and_worker_init_preloads(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    from celery.signals import worker_init

    from mlops_ops.executors import CELERY_CONFIG_OPTIONS, celery_workers
    from mlops_ops.executors.preload import ENV_SETTING

    module, name = CELERY_CONFIG_OPTIONS.rsplit(".", 1)
    assert module == celery_workers.__name__ and getattr(celery_workers, name) is celery_workers.CELERY_CONFIG
    assert celery_workers.CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    monkeypatch.setenv(ENV_SETTING, "json, not_installed_module_xyz")
    replies = worker_init.send(sender=None)  # what an `airflow celery worker` sends before its pool forks
    (took,) = [result for receiver, result in replies if receiver is celery_workers.preload_in_worker]
    assert list(took) == ["json"]  # the one installed; the other skipped
