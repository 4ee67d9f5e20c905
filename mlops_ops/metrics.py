"""Stage figures through Airflow's own metrics system (StatsD or OpenTelemetry, as ``[metrics]`` configures).

Names are ``mlops_ops.<pipeline>.<stage>.<figure>``: the pipeline is part of the name, not
a tag, because plain StatsD drops tags. With metrics off (Airflow's default) every call is
a no-op, so stages call these unconditionally.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def stat_name(pipeline: str, stage: str, figure: str) -> str:
    return ".".join(_UNSAFE.sub("_", part) for part in ("mlops_ops", pipeline, stage, figure))


def gauge(pipeline: str, stage: str, figure: str, value: float) -> None:
    """Set a gauge (a level: rows in the last batch, drift share, a metric of the champion)."""
    from airflow.sdk.observability import stats

    try:
        stats.gauge(stat_name(pipeline, stage, figure), float(value))
    except Exception:
        log.warning("could not emit metric %s", stat_name(pipeline, stage, figure), exc_info=True)


def incr(pipeline: str, stage: str, figure: str, count: int = 1) -> None:
    """Add to a counter (rows ingested, gate failures, champion changes)."""
    from airflow.sdk.observability import stats

    try:
        stats.incr(stat_name(pipeline, stage, figure), count=int(count))
    except Exception:
        log.warning("could not emit metric %s", stat_name(pipeline, stage, figure), exc_info=True)
