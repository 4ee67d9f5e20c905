"""Save a trained model as the pyfunc of :mod:`mlops_ops.training.serving`: encoding + estimator + metadata.

The types skops will load are listed at save time (this process built every object), and the model's pip
requirements are pinned from the training environment instead of MLflow's inference (which loads the model in a
second process).
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_ops._extras import require
from mlops_ops.training import serving


def _pins(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def _dump_skops(obj: Any, path: Path) -> list[str]:
    skops_io = require("skops.io")

    skops_io.dump(obj, path)
    return list(skops_io.get_untrusted_types(file=path))


def log_tabular_model(mlflow: Any, trained: Any, preprocessor: Any, meta: dict[str, Any], example: Any) -> Any:
    """Log the model under the active run as ``model``; ``example`` is a few rows of raw feature columns."""
    infer_signature = require("mlflow.models").infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trusted = set(_dump_skops(preprocessor, folder / "preprocessor.skops"))
        requirements = ["mlflow", "pandas", "numpy", "scikit-learn", "skops"]
        if trained.kind == "torch":
            torch = require("torch")

            estimator = folder / "estimator.pt"
            torch.save(trained.model, estimator)
            requirements.append("torch")
        else:
            estimator = folder / "estimator.skops"
            trusted |= set(_dump_skops(trained.model, estimator))
        full_meta = {**meta, "estimator_kind": trained.kind,
                     "trusted_types": sorted(trusted | set(trained.trusted_types))}  # fmt: skip
        (folder / "meta.json").write_text(json.dumps(full_meta, indent=1, default=str))
        artifacts = {"meta": str(folder / "meta.json"), "preprocessor": str(folder / "preprocessor.skops"),
                     "estimator": str(estimator)}  # fmt: skip
        model = serving.TabularModel()
        model.meta = full_meta
        model.preprocessor = preprocessor
        if trained.kind == "torch":
            model.module = trained.model
        else:
            model.estimator = trained.model
        signature = infer_signature(example, model.predict(None, example))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=serving.__file__,
            artifacts=artifacts,
            signature=signature,
            input_example=example,
            pip_requirements=_pins(requirements),
        )
