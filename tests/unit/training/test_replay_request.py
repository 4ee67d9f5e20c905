"""A version's recorded request (``mlops_ops/request.json``) is outside input: anyone with MLflow's credentials,
trainer code included, can write a run's artifacts. A replay runs it only if a spec and a run's conf could have
asked for it (N16); the real MLflow round trip is in ``tests/integration/test_replay.py``."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_ops.training.replay import RefusedRequestError, check_request

GOOD: dict[str, Any] = {"features": "ns.features@1", "model": {"task": "binary", "target": "churned"},
                        "trainer": "sklearn", "params": {"max_iter": 40}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"trainer": "os:system"}, "module 'os' can evaluate, unpickle or run programs"),
        ({"trainer": "payload_nobody_listed:train"}, "is not trusted for spec callables"),
        ({"trainer": "rm -rf /"}, "is not 'sklearn', 'torch_mlp' or 'package.module:function'"),
        ({"params": {"estimator": "antigravity.Fly"}}, "params do not fit trainer 'sklearn': estimator:"),
        ({"trainer": "torch_mlp", "params": {"epochs": 10**9}}, "epochs:"),
        ({"trainer": "torch_mlp", "params": {"layers": 3}}, "params do not fit trainer 'torch_mlp'"),
        ({"model": {"task": "binary"}}, "model.target: Field required"),
        ({"model": {"task": "binary", "target": "churned", "estimator": "os.system"}}, "model.estimator"),
        ({"params": "[]"}, "'params' must be dict"),
        ({"features": None}, "'features' must be str"),
    ],
)
def test_a_request_a_spec_could_not_make_is_refused(change: dict[str, Any], why: str) -> None:
    with pytest.raises(RefusedRequestError, match=r"m v1 request\.json: the recorded request is refused") as err:
        check_request({**GOOD, **change}, "m v1 request.json")
    assert why in str(err.value)


def test_a_request_within_the_rules_passes_and_the_pipeline_schema_wins() -> None:
    assert check_request(GOOD, "m v1") == GOOD
    torch = {**GOOD, "trainer": "torch_mlp", "params": {"epochs": 3, "hidden": [16]}}
    assert check_request(torch, "m v1") == torch
    mine = {**GOOD, "trainer": "tests.unit.training.test_models:binary_only_trainer", "params": {"depth": 3}}
    assert check_request(mine, "m v1") == mine  # `tests` is on the test session's allow-list
    strict = {"type": "object", "properties": {"depth": {"maximum": 2}}}
    with pytest.raises(RefusedRequestError, match="depth:"):
        check_request(mine, "m v1", strict)
    with pytest.raises(RefusedRequestError, match="expected a JSON object, got list"):
        check_request([GOOD], "m v1")
