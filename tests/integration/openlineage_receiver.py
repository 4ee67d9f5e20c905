"""A local OpenLineage HTTP endpoint (what Marquez or any backend receives) and a strict check of each event.

openlineage-python 1.54 ships the OpenLineage spec as classes generated from its JSON Schemas
(``openlineage.client.generated``), not as the JSON files. ``validate`` walks an event against those classes:
every required field present, every value of the declared type (strings, numbers, booleans, lists, maps, nested
objects, the event-type enum), no unknown field in the spec's own objects, each standard facet against its class,
every facet with an absolute ``_producer`` and ``_schemaURL``, ``eventTime`` an ISO time with a zone, ``runId`` a UUID;
the library's own facets against the JSON Schemas it ships (``mlops_ops/lineage/schemas``).
"""

from __future__ import annotations

import enum
import json
import threading
import types
import typing
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlops_ops.lineage
from mlops_ops.lineage.openlineage import SCHEMA_BASE

# the schemas of the installed package (the wheel's, when the tests run against one)
SCHEMAS = Path(mlops_ops.lineage.__file__).resolve().parent / "schemas"


class Receiver:
    """``POST /api/v1/lineage`` bodies, kept in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def transport(self) -> str:
        """``[openlineage] transport`` for Airflow's provider."""
        return json.dumps({"type": "http", "url": self.url, "endpoint": "api/v1/lineage"})

    def stop(self) -> None:
        self.server.shutdown()


def _standard_facets() -> dict[str, list[type]]:
    from openlineage.client.generated import (
        catalog_dataset,
        data_quality_assertions_dataset,
        dataset_version_dataset,
        datasource_dataset,
        documentation_job,
        error_message_run,
        job_type_job,
        nominal_time_run,
        ownership_job,
        parent_run,
        processing_engine_run,
        schema_dataset,
        source_code_location_job,
        symlinks_dataset,
        tags_job,
        tags_run,
    )

    return {
        "parent": [parent_run.ParentRunFacet], "nominalTime": [nominal_time_run.NominalTimeRunFacet],
        "processing_engine": [processing_engine_run.ProcessingEngineRunFacet],
        "errorMessage": [error_message_run.ErrorMessageRunFacet], "jobType": [job_type_job.JobTypeJobFacet],
        "documentation": [documentation_job.DocumentationJobFacet], "ownership": [ownership_job.OwnershipJobFacet],
        "sourceCodeLocation": [source_code_location_job.SourceCodeLocationJobFacet],
        "schema": [schema_dataset.SchemaDatasetFacet], "dataSource": [datasource_dataset.DatasourceDatasetFacet],
        "version": [dataset_version_dataset.DatasetVersionDatasetFacet],
        "dataQualityAssertions": [data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet],
        "symlinks": [symlinks_dataset.SymlinksDatasetFacet], "catalog": [catalog_dataset.CatalogDatasetFacet],
        "tags": [tags_job.TagsJobFacet, tags_run.TagsRunFacet],
    }  # fmt: skip


def _absolute(value: Any) -> bool:
    parsed = urlparse(str(value))
    return bool(parsed.scheme and parsed.netloc)


def validate(event: dict[str, Any]) -> None:
    """Raise ``AssertionError`` naming the path of the first problem."""
    from openlineage.client.generated.base import RunEvent

    _check(event, RunEvent, "event", strict=True)
    datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).utcoffset()
    assert datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).tzinfo, "eventTime without a zone"
    uuid.UUID(event["run"]["runId"])
    assert _absolute(event["producer"]) and _absolute(event["schemaURL"]), "producer/schemaURL not absolute URIs"


def _check(value: Any, kind: Any, path: str, *, strict: bool) -> None:
    import attr

    origin = typing.get_origin(kind)
    if kind is Any:
        return
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return
        problems = []
        for option in (o for o in options if o is not type(None)):
            try:
                _check(value, option, path, strict=strict)
                return
            except AssertionError as err:
                problems.append(str(err))
        raise AssertionError(f"{path}: {value!r} fits none of {options}: {problems}")
    if origin is list:
        assert isinstance(value, list), f"{path}: expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            _check(item, typing.get_args(kind)[0], f"{path}[{i}]", strict=strict)
        return
    if origin is dict:
        assert isinstance(value, dict), f"{path}: expected an object, got {type(value).__name__}"
        facet_base = typing.get_args(kind)[1]
        for key, item in value.items():
            _facet(key, item, facet_base, f"{path}.{key}") if _is_facet(facet_base) else _check(
                item, facet_base, f"{path}.{key}", strict=strict
            )
        return
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        assert value in {m.value for m in kind}, f"{path}: {value!r} is not one of {[m.value for m in kind]}"
        return
    if kind in (str, int, float, bool):
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        ok = ok or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        assert ok, f"{path}: expected {kind.__name__}, got {type(value).__name__} {value!r}"
        return
    if isinstance(kind, type) and attr.has(kind):
        assert isinstance(value, dict), f"{path}: expected an object for {kind.__name__}"
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in attr.fields(kind)}
        for name, field in fields.items():
            if name not in value:
                required = field.default is attr.NOTHING and field.init
                assert not required, f"{path}: required field '{name}' of {kind.__name__} is missing"
                continue
            _check(value[name], hints[name], f"{path}.{name}", strict=strict)
        if strict:
            unknown = sorted(set(value) - set(fields))
            assert not unknown, f"{path}: {kind.__name__} has no field(s) {unknown}"
        return
    raise AssertionError(f"{path}: no rule for {kind!r}")


def _is_facet(kind: Any) -> bool:
    from openlineage.client.generated.base import BaseFacet

    return isinstance(kind, type) and issubclass(kind, BaseFacet)


def _facet(name: str, value: Any, base: type, path: str) -> None:
    """A standard facet against its class (extra fields allowed: facets are open); any facet needs its two URIs."""
    assert isinstance(value, dict), f"{path}: a facet must be an object"
    assert _absolute(value.get("_producer")), f"{path}: _producer is not an absolute URI: {value.get('_producer')!r}"
    assert _absolute(value.get("_schemaURL")), f"{path}: _schemaURL is not an absolute URI"
    standard = [c for c in _standard_facets().get(name, []) if issubclass(c, base)]
    _check(value, standard[0] if standard else base, path, strict=False)
    if str(value["_schemaURL"]).startswith(SCHEMA_BASE):  # ours: against the JSON Schema the package ships
        import jsonschema

        schema = json.loads((SCHEMAS / str(value["_schemaURL"]).removeprefix(SCHEMA_BASE)).read_text())
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as err:
            raise AssertionError(f"{path}: {err.message}") from err
