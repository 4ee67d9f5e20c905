"""A team's CI test of its own pipeline: real Kafka, Spark, MLflow; small data; one function per behaviour.

Run with ``pytest`` once mlops-ops is installed: its pytest plugin provides ``mlops_runner``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from mlops_ops.demo import churn_event

SPEC = Path(__file__).parent / "pipelines" / "churn_small.yaml"


def events(n: int, seed: int, *, shifted: bool = False) -> list[dict]:
    rng, now = random.Random(seed), datetime.now(UTC)
    return [churn_event(rng, f"c{i:05d}", now, shifted=shifted) for i in range(n)]


def test_first_run_trains_and_promotes_a_champion(mlops_runner) -> None:
    run = mlops_runner.run(SPEC, events=events(3_000, seed=1) + [b"not json"])

    assert run.state == "success", run.tasks
    assert run.tasks == {"ingest_kafka": "success", "preprocess": "success", "train": "success",
                         "evaluate": "success", "promote": "success"}
    assert run.xcom("ingest_kafka")["rows"] == 3_000 and run.xcom("ingest_kafka")["bad"] == 1
    assert run.xcom("evaluate")["metrics"]["roc_auc"] > 0.6
    assert run.champion() == "1"


def test_a_model_worse_than_the_champion_is_not_promoted(mlops_runner) -> None:
    first = mlops_runner.run(SPEC, events=events(3_000, seed=2))
    # the same isolated pipeline again, with hyper-parameters that make a useless model
    # nothing new was ingested: no raw Asset event, so the training DAG is run by hand (dag="training")
    worse = mlops_runner.run(
        first.spec, isolate=False, dag="training", conf={"train_params": {"max_iter": 1, "learning_rate": 1e-6}}
    )

    assert worse.tasks["evaluate"] == "success" and worse.tasks["promote"] == "skipped"
    verdict = worse.xcom("evaluate")
    assert not verdict["blessed"] and any("regressed" in reason for reason in verdict["reasons"])
    assert worse.champion() == "1"
