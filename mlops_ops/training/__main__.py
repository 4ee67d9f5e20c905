"""``python -m mlops_ops.training``: see :mod:`mlops_ops.training.run`."""

from __future__ import annotations

import sys

from mlops_ops.training.run import main

sys.exit(main())
