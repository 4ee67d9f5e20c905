"""Load pipeline specs from YAML, safely, with errors that point at file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_ops.exceptions import SpecError, SpecProblem
from mlops_ops.spec import PipelineSpec, cross_checks
from mlops_ops.spec_files import SPEC_SUFFIXES, find_spec_files

__all__ = ["SPEC_SUFFIXES", "find_spec_files", "load_spec", "parse_spec"]

MAX_SPEC_BYTES = 1_000_000
MAX_EXPANDED_NODES = 50_000


def load_spec(path: str | Path) -> PipelineSpec:
    """Read, parse and validate one spec file; raise :class:`SpecError` listing every problem."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise SpecError(source, [SpecProblem("<file>", f"cannot be read: {err.strerror}")]) from err
    if size > MAX_SPEC_BYTES:
        raise SpecError(source, [SpecProblem("<file>", f"is {size} bytes; a spec may be at most {MAX_SPEC_BYTES}")])
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        problem = SpecProblem("<file>", f"is not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r})")
        raise SpecError(source, [problem]) from err
    return parse_spec(text, source=source, default_pipeline=path.stem)


def parse_spec(text: str, *, source: str = "<string>", default_pipeline: str | None = None) -> PipelineSpec:
    """Parse YAML text into a :class:`PipelineSpec`.

    ``default_pipeline`` (the file stem) names the pipeline when the spec has no
    ``pipeline`` key, and must match it when it has one: that is what lets the DAG
    loader build only the file a running task needs.
    """
    root, data = _compose(text, source)
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise SpecError(source, [SpecProblem("<root>", f"must be a mapping of stage names to settings, got {kind}")])
    problems: list[SpecProblem] = []
    if default_pipeline is not None:
        given = data.get("pipeline")
        if given is None:
            data = {"pipeline": default_pipeline, **data}
        elif given != default_pipeline:
            problems.append(
                SpecProblem(
                    "pipeline",
                    f"must equal the file name stem '{default_pipeline}' (one pipeline per file, named after it)",
                    given,
                    _line_of(root, ("pipeline",)),
                )
            )
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as err:
        problems += [_problem(e, root) for e in err.errors(include_url=False)]
        raise SpecError(source, problems) from err
    problems += [SpecProblem(".".join(str(p) for p in loc), message, given, _line_of(root, loc))
                 for loc, message, given in cross_checks(spec)]  # fmt: skip
    if problems:
        raise SpecError(source, problems)
    return spec


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters at once (found by fuzzing)
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, source)
            _check_duplicate_keys(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise SpecError(source, [SpecProblem("<yaml>", f"is not valid YAML: {err.problem}", line=line)]) from err
    except yaml.YAMLError as err:
        raise SpecError(source, [SpecProblem("<yaml>", f"is not valid YAML: {err}")]) from err
    except RecursionError as err:  # `a: [[[[...` past the parser's stack (found by fuzzing)
        raise SpecError(source, [SpecProblem("<yaml>", "is nested deeper than a spec can be")]) from err
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Refuse alias bombs: count nodes as if every alias were expanded."""
    count = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_EXPANDED_NODES:
            raise SpecError(
                source,
                [SpecProblem("<yaml>", f"expands to more than {MAX_EXPANDED_NODES} nodes (anchor/alias abuse?)")],
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def _check_duplicate_keys(root: yaml.Node, source: str) -> None:
    """Refuse a key given twice in one mapping: YAML loaders keep the last one and silently drop the first."""
    problems: list[SpecProblem] = []
    seen_nodes: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # an alias points at a node already checked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        problems.append(SpecProblem(key.value, f"is given twice (lines {first[key.value]} and "
                                                               f"{line}); keep one", line=line))  # fmt: skip
                    first.setdefault(key.value, line)
                stack.append(value)
    if problems:
        raise SpecError(source, problems)


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _problem(error: Any, root: yaml.Node | None) -> SpecProblem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal"))))
    field = ".".join(str(p) for p in loc) or "<root>"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "is not a known key (check the spelling; see docs/spec.md for the allowed keys)"
    given = error.get("input") if error["type"] != "missing" else None
    if isinstance(given, dict):
        given = None
    return SpecProblem(field, message, given, _line_of(root, loc))


def spec_node(path: str | Path) -> yaml.Node | None:
    """The YAML node tree of a spec file (for the lines of fields), as :func:`load_spec` reads it."""
    node, _ = _compose(Path(path).read_text(encoding="utf-8"), str(path))
    return node


def line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the field at ``loc`` (or of its nearest parent that is in the file)."""
    return _line_of(root, loc)
