"""Cache of DAG plans per spec file, so parsing an unchanged spec skips YAML validation and pydantic.

The key is the SHA-256 of the spec's bytes plus the library version and the modification
times of the modules that turn specs into plans, so any change to either is a miss.
Only valid specs are cached; an invalid one is validated (and reported) on every parse.
The cache lives under ``$MLOPS_OPS_PLAN_CACHE`` or ``$AIRFLOW_HOME/mlops_ops/plan_cache``:
a folder of the Airflow user, never a shared temp folder, because a plan decides what
the DAG's tasks do.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import mlops_ops
from mlops_ops.callables import configured_modules
from mlops_ops.factories import plan as planning

PLAN_FORMAT = 10
_PLANNING_MODULES = ("spec.py", "spec_loader.py", "naming.py", "callables.py", "factories/plan.py", "factories/docs.py",
                     "training/params_schema.py")  # fmt: skip


def cache_dir() -> Path:
    explicit = os.environ.get("MLOPS_OPS_PLAN_CACHE")
    if explicit:
        return Path(explicit)
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(airflow_home) / "mlops_ops" / "plan_cache"


def _code_fingerprint() -> str:
    root = Path(mlops_ops.__file__).parent
    stamps = [f"{name}:{(root / name).stat().st_mtime_ns}" for name in _PLANNING_MODULES]
    # which spec callables are trusted decides whether a spec is valid: a changed allow-list is a miss
    trusted = ",".join(configured_modules())
    return f"{PLAN_FORMAT}|{mlops_ops.__version__}|{trusted}|{'|'.join(stamps)}"


def plan_key(content: bytes, source: str) -> str:
    digest = hashlib.sha256(content)
    digest.update(b"\0" + source.encode() + b"\0" + _code_fingerprint().encode())
    return digest.hexdigest()


def plans_for(path: Path) -> list[dict[str, Any]]:
    """The DAG plans of one spec file, from the cache or by validating it (raises on an invalid spec)."""
    content = path.read_bytes()
    key = plan_key(content, str(path))
    cached = cache_dir() / f"{key}.json"
    try:
        plans: list[dict[str, Any]] = json.loads(cached.read_bytes())
        return plans
    except (OSError, ValueError):
        pass
    from mlops_ops.spec_loader import load_spec

    plans = planning.plan_dags(load_spec(path), source=path)  # type: ignore[assignment]
    _store(cached, plans)
    return plans


def _store(target: Path, plans: list[dict[str, Any]]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(plans))
        tmp.replace(target)
    except OSError:
        pass  # a read-only home only costs the cache, never the parse
