"""Print the requirements of this package for some extras, one per line, with the package's own extras
(``mlops-ops[lake]``) expanded: an image installs its dependencies in a layer of their own (cached while only the
code changes), then the package itself with ``--no-deps``.

usage: python3 docker/requirements.py pyproject.toml EXTRA [EXTRA...]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    own = re.compile(rf"^{re.escape(project['name'])}\[(?P<extras>[^\]]+)\]$")
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in project["optional-dependencies"]:
            raise SystemExit(f"{pyproject}: no extra '{extra}' (extras: {', '.join(project['optional-dependencies'])})")
        for requirement in project["optional-dependencies"][extra]:
            match = own.match(requirement.replace(" ", ""))
            if match:
                pending += match["extras"].split(",")
            elif requirement not in out:
                out.append(requirement)
    return out


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]), sys.argv[2:])))
