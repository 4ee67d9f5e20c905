"""How many histories the harness generates: a fixed budget and seed in CI, a long mode by environment variable.

``MLOPS_HARNESS=long`` runs ``MLOPS_HARNESS_EXAMPLES`` histories (default 400) of up to 60 steps each with a random
seed (add ``-p no:timeout``: pytest's 600 s per test is too short for it); Hypothesis prints the seed to reproduce a
failure with ``@seed``. The default, in CI, runs a fixed number of histories derandomized, so every run of the suite
checks the same ones.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

LONG = os.environ.get("MLOPS_HARNESS", "") == "long"


def harness_settings(examples: int, steps: int) -> settings:
    if LONG:
        examples, steps = int(os.environ.get("MLOPS_HARNESS_EXAMPLES", "400")), 60
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        derandomize=not LONG,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        # CI reports a failing history as generated (shrinking one took minutes); the long mode shrinks it
        phases=list(Phase) if LONG else [p for p in Phase if p is not Phase.shrink],
    )
