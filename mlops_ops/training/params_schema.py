"""The JSON Schema of each trainer's hyper-parameters: what a spec's ``train.params`` and a run's ``train_params``
(DAG Param, REST API, trigger form) may hold.

``torch_mlp`` declares every parameter with a range; ``sklearn`` and a user trainer get a bounded generic schema
(at most 64 keys of scalars, short strings and short lists, numbers within ±1e6) unless the spec declares its own in
``train.params_schema``. The schema becomes the Param's schema, so Airflow refuses a bad ``conf`` when the run is
created (the API answers 400); the training task checks the merged parameters once more before any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Draft 7: Airflow checks every Param's schema against its meta-schema on each parse of the DAG file, and draft 7's
# meta-schema is checked about five times faster than 2020-12's (no $dynamicRef); nothing here needs a later draft.
DRAFT = "http://json-schema.org/draft-07/schema#"
# Type-specific keywords apply only to values of that type, so one schema bounds every kind of value.
_SCALAR: dict[str, Any] = {"type": ["number", "string", "boolean", "null"], "minimum": -1e6, "maximum": 1e6,
                           "maxLength": 200}  # fmt: skip
GENERIC: dict[str, Any] = {
    "$schema": DRAFT,
    "type": "object",
    "maxProperties": 64,
    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
    "additionalProperties": {
        **_SCALAR,
        "type": ["number", "string", "boolean", "null", "array", "object"],
        "maxItems": 64,
        "items": _SCALAR,  # lists of scalars
        "maxProperties": 64,
        "additionalProperties": _SCALAR,  # one level of mapping, e.g. class_weight
    },
}
# trainer sklearn's estimator: a scikit-learn class by its public path, whether the spec's ``train.estimator`` or a
# run's ``train_params.estimator`` names it; nothing else is imported (a run's conf is not a spec: the callable trust
# model's allow-list does not reach it, and the training runtime checks the same pattern before any import)
ESTIMATOR_PATH = r"^sklearn(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9_]*$"
SKLEARN: dict[str, Any] = {**GENERIC, "properties": {"estimator": {"type": "string", "pattern": ESTIMATOR_PATH}}}
TORCH_MLP: dict[str, Any] = {
    "$schema": DRAFT,
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hidden": {"type": "array", "maxItems": 16, "items": {"type": "integer", "minimum": 1, "maximum": 8192}},
        "epochs": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 1_048_576},
        "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        "weight_decay": {"type": "number", "minimum": 0, "maximum": 10},
        "dropout": {"type": "number", "minimum": 0, "maximum": 0.95},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "patience": {"type": "integer", "minimum": 0, "maximum": 10**9},  # large: no early stop (epochs bound the run)
        "loss": {"enum": ["mse", "huber"]},
    },
}


def schema_for(trainer: str, declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The hyper-parameter schema of ``trainer`` (``declared`` wins: a spec's ``train.params_schema``)."""
    if declared:
        return {"$schema": DRAFT, "type": "object", **dict(declared)}
    return dict({"torch_mlp": TORCH_MLP, "sklearn": SKLEARN}.get(trainer, GENERIC))


def problems(params: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``params`` breaks ``schema``, as ``<key>: <message>`` lines (empty when it fits)."""
    import jsonschema

    validator = jsonschema.validators.validator_for(dict(schema), default=jsonschema.Draft7Validator)(dict(schema))
    found = []
    for error in sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(the object)"
        found.append(f"{where}: {error.message[:200]}")
    return found


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a usable JSON Schema (``None`` when it is)."""
    import jsonschema

    try:
        jsonschema.validators.validator_for({"$schema": DRAFT, **dict(schema)}).check_schema(dict(schema))
    except jsonschema.SchemaError as err:
        return f"not a valid JSON Schema: {err.message}"
    return None
