"""Refuse deployment secrets that are still the examples' placeholders (``docker/.env.example``) or too weak, before a
deployment starts with them: ``mlops-ops check-secrets VAR[:MIN_LENGTH] ...`` (the compose file's init step runs it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PLACEHOLDER = re.compile(r"change[-_ ]?me|changeit|placeholder|example|^x+$|^password$|^secret$|^admin$", re.I)
DEFAULT_MIN_LENGTH = 16


def secret_problems(names: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What is wrong with each ``NAME`` or ``NAME:MIN_LENGTH`` in ``env`` (never the value itself)."""
    found = []
    for item in names:
        name, _, length = item.partition(":")
        minimum = int(length) if length else DEFAULT_MIN_LENGTH
        value = env.get(name)
        if not value:
            found.append(f"{name} is not set")
        elif PLACEHOLDER.search(value):
            found.append(f"{name} is still a placeholder of the example: generate a value (e.g. python -c "
                         f"'import secrets; print(secrets.token_urlsafe(32))')")  # fmt: skip
        elif len(value) < minimum:
            found.append(f"{name} has {len(value)} characters; at least {minimum} are needed")
    return found
