"""``WarmLocalExecutor``: Airflow's LocalExecutor whose task processes start with this library's engines imported.

Airflow's LocalExecutor forks its worker processes from the scheduler, and each worker forks one process per task
(the Task SDK's supervisor). A task of this library then imports its engines in that fresh process: Evidently
alone takes 4 to 7 s on a 2-core machine, MLflow, scikit-learn, Great Expectations and pyiceberg several more, paid
again by every drift check, gate, evaluation and promotion before it reads a row. This executor imports them once,
in the scheduler, before the workers fork (:mod:`mlops_ops.executors.preload`, setting
``[mlops_ops] preload_modules``): every task process inherits them. Everything else is Airflow's LocalExecutor.

Only a ``fork`` start method lets the workers inherit (Linux's default up to Python 3.13; Airflow's
``[core] mp_start_method``); with ``spawn`` or ``forkserver`` nothing is preloaded and the log says so. The
scheduler's memory grows by what it imports (about 600 MB with the default list), shared copy-on-write with its
workers; Airflow already freezes the garbage collector around the fork so those pages stay shared.
"""

from __future__ import annotations

import multiprocessing

from airflow.executors.local_executor import LocalExecutor

from mlops_ops.executors.preload import preload_configured


class WarmLocalExecutor(LocalExecutor):
    """LocalExecutor that imports ``[mlops_ops] preload_modules`` in the scheduler before its workers fork."""

    def start(self) -> None:
        if multiprocessing.get_start_method() != "fork":
            self.log.info("mlops-ops: start method %s, workers would not inherit imports: nothing preloaded",
                          multiprocessing.get_start_method())  # fmt: skip
        else:
            preload_configured(self.log)
        super().start()
