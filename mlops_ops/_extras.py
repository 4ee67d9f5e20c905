"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlops_ops.exceptions import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'mlops-ops[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(module.split(".")[0], extra) from err
