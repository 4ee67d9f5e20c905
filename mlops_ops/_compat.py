"""What moved between Airflow 3.1 and the current 3.x, looked up in one place (lazily: no import at module level)."""

from __future__ import annotations

from typing import Any


def airflow_exception(name: str) -> Any:
    """An Airflow exception class (``AirflowSkipException``, ``AirflowFailException``, ``AirflowNotFoundException``,
    ``ParamValidationError``): from the task SDK where it lives now (Airflow 3.2+), else ``airflow.exceptions``
    (Airflow 3.1), without the deprecation warning the old location gives on newer versions."""
    import airflow.sdk.exceptions as sdk

    found = getattr(sdk, name, None)
    if found is None:
        import airflow.exceptions as legacy

        found = getattr(legacy, name)
    return found


def asset_or_time_schedule() -> Any:
    """``AssetOrTimeSchedule``: in ``airflow.sdk`` from Airflow 3.2, in ``airflow.timetables.assets`` before."""
    try:
        from airflow.sdk import AssetOrTimeSchedule
    except ImportError:
        from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[no-redef,assignment]
    return AssetOrTimeSchedule


def cron_trigger_timetable() -> Any:
    """``CronTriggerTimetable``: in ``airflow.sdk`` from Airflow 3.2, in ``airflow.timetables.trigger`` before."""
    try:
        from airflow.sdk import CronTriggerTimetable
    except ImportError:
        from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef,assignment]
    return CronTriggerTimetable


def dag_bag() -> Any:
    """``DagBag``: in ``airflow.dag_processing.dagbag`` from Airflow 3.2, in ``airflow.models.dagbag`` before."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,assignment]
    return DagBag
