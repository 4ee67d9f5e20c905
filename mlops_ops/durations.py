"""Durations as specs write them: ``30m``, ``6h``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = r"^\d+[mhd]$"


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([mhd])", text)
    if match is None:
        raise ValueError(f"duration '{text}' is not like 30m, 6h or 2d")
    amount = int(match.group(1))
    return {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[match.group(2)]
