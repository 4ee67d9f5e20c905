"""OpenLineage datasets and facets for what each stage read and wrote, built from the stage's own result.

Airflow's OpenLineage provider emits the run events (START, COMPLETE, FAIL) with the DAG and task facets; the
library's operators add their real inputs and outputs (``get_openlineage_facets_on_complete``), built here from
the small result each task returns:

* Kafka topics (namespace ``kafka://<first bootstrap server>``) with the batch's offset ranges per partition
  (custom facet ``mlopsOps_kafkaOffsets``);
* S3 objects (``s3://<bucket>``, the key) with their ETags (``mlopsOps_s3Object``);
* Iceberg tables (``iceberg://<catalog>``, ``<pipeline>.<table>``) at a snapshot: the standard ``version`` facet
  carries the snapshot id, ``mlopsOps_icebergSnapshot`` the branch and batch;
* the quality gate's GX result as the standard ``dataQualityAssertions`` input facet (plus the Data Docs page);
* the MLflow run (run facet ``mlopsOps_mlflowRun``) and the registered model version as an output dataset
  (``<tracking URI>``, ``models/<name>/<version>``) with the approval decision where one was made.

No Airflow imports: operators pass primitives (namespaces, the result dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attr
from openlineage.client.generated.base import DatasetFacet, InputDataset, OutputDataset, RunFacet
from openlineage.client.generated.data_quality_assertions_dataset import Assertion, DataQualityAssertionsDatasetFacet
from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

SCHEMA_BASE = "https://mlops-ops.dev/spec/facets/1-0-0/"  # the JSON Schemas ship in mlops_ops/lineage/schemas/
MAX_OBJECTS = 100  # S3 objects named per ingest event (the count is always given)
_FacetClass = TypeVar("_FacetClass", bound=type)


def _ours(cls: _FacetClass) -> _FacetClass:
    """The library's facet: its ``_schemaURL`` names the JSON Schema shipped as ``schemas/<class name>.json``."""
    url = SCHEMA_BASE + cls.__name__ + ".json"
    cls._get_schema = staticmethod(lambda: url)  # type: ignore[attr-defined]
    return cls


@_ours
@attr.define
class KafkaOffsetsDatasetFacet(DatasetFacet):
    """The offsets a batch read: per partition, ``startOffset`` (first) to ``endOffset`` (next, exclusive)."""

    clusterId: str | None  # OpenLineage facets' fields are camelCase
    partitions: list[dict[str, int]]


@_ours
@attr.define
class S3ObjectDatasetFacet(DatasetFacet):
    eTag: str


@_ours
@attr.define
class IcebergSnapshotDatasetFacet(DatasetFacet):
    snapshotId: int
    branch: str
    batchId: str | None = None


@_ours
@attr.define
class MlflowRunFacet(RunFacet):
    runId: str
    trackingUri: str


@_ours
@attr.define
class ModelVersionDatasetFacet(DatasetFacet):
    name: str
    version: str
    runId: str | None = None
    featuresSnapshot: str | None = None
    decision: str | None = None  # approval: approved | rejected | timed_out
    decidedBy: str | None = None
    decidedAt: str | None = None
    comment: str | None = None


@_ours
@attr.define
class DataDocsDatasetFacet(DatasetFacet):
    suite: str
    page: str | None = None


@attr.define
class Lineage:
    """What one task read and wrote: becomes the provider's ``OperatorLineage``."""

    inputs: list[InputDataset] = attr.Factory(list)
    outputs: list[OutputDataset] = attr.Factory(list)
    run_facets: dict[str, RunFacet] = attr.Factory(dict)


def iceberg_table(catalog: str, ref: str, *, branch: str = "main", batch: str | None = None,
                  output: bool = False, extra: Mapping[str, DatasetFacet] | None = None) -> Any:  # fmt: skip
    """A table at a snapshot, from a reference ``<pipeline>.<table>@<snapshot id>``."""
    ident, _, snapshot = ref.rpartition("@")
    facets: dict[str, DatasetFacet] = {"version": DatasetVersionDatasetFacet(datasetVersion=snapshot)}
    facets["mlopsOps_icebergSnapshot"] = IcebergSnapshotDatasetFacet(int(snapshot), branch, batch)
    facets.update(extra or {})
    kind = OutputDataset if output else InputDataset
    return kind(namespace=f"iceberg://{catalog}", name=ident, facets=facets)


def model_version(tracking_uri: str, name: str, version: str, **details: str | None) -> OutputDataset:
    facet = ModelVersionDatasetFacet(name=name, version=str(version))
    for key, value in details.items():  # runId, featuresSnapshot, decision, decidedBy, decidedAt, comment
        setattr(facet, key, value)
    return OutputDataset(namespace=tracking_uri, name=f"models/{name}/{version}",
                         facets={"version": DatasetVersionDatasetFacet(datasetVersion=str(version)),
                                 "mlopsOps_modelVersion": facet})  # fmt: skip


def kafka_ingest(result: Mapping[str, Any], *, bootstrap: str, catalog: str) -> Lineage:
    """``result``: what ``KafkaToLakeOperator`` returned (``offsets``: ``{"topic/partition": [first, next]}``)."""
    by_topic: dict[str, list[dict[str, int]]] = {}
    for key, (first, following) in sorted((result.get("offsets") or {}).items()):
        topic, _, partition = key.rpartition("/")
        by_topic.setdefault(topic, []).append({"partition": int(partition), "startOffset": int(first),
                                               "endOffset": int(following)})  # fmt: skip
    inputs = [InputDataset(namespace=f"kafka://{bootstrap}", name=topic,
                           facets={"mlopsOps_kafkaOffsets": KafkaOffsetsDatasetFacet(result.get("cluster_id"), parts)})
              for topic, parts in by_topic.items()]  # fmt: skip
    return Lineage(inputs, [_raw_output(result, catalog, "kafka")])


def s3_ingest(result: Mapping[str, Any], *, catalog: str) -> Lineage:
    """``result``: what ``S3ToLakeOperator`` returned (``sources``: ``[{bucket, key, etag}]``)."""
    inputs = [InputDataset(namespace=f"s3://{o['bucket']}", name=o["key"],
                           facets={"mlopsOps_s3Object": S3ObjectDatasetFacet(str(o["etag"]))})
              for o in (result.get("sources") or [])[:MAX_OBJECTS]]  # fmt: skip
    return Lineage(inputs, [_raw_output(result, catalog, "s3")])


def _raw_output(result: Mapping[str, Any], catalog: str, source: str) -> Any:
    branch = "main" if result.get("published") else f"audit_{source}"
    return iceberg_table(catalog, f"{result['table']}@{result['snapshot_id']}", branch=branch,
                         batch=result.get("batch"), output=True)  # fmt: skip


def quality_gate(result: Mapping[str, Any], batches: Mapping[str, Mapping[str, Any]], *, catalog: str,
                 suite: str, docs_url: str | None) -> Lineage:  # fmt: skip
    """Inputs: each audited batch (its staged snapshot) with GX's assertions; output: ``raw``'s published head."""
    inputs = []
    for batch_id, outcome in sorted(batches.items()):
        staged = outcome.get("staged_snapshot") or outcome.get("snapshot_id")
        if staged is None:
            continue
        assertions = [Assertion(assertion=a["assertion"], success=bool(a["success"]), column=a.get("column"))
                      for a in outcome.get("assertions") or []]  # fmt: skip
        page = f"{docs_url}/{outcome['docs_path']}" if docs_url and outcome.get("docs_path") else None
        extra: dict[str, DatasetFacet] = {"mlopsOps_dataDocs": DataDocsDatasetFacet(suite, page)}
        dataset = iceberg_table(catalog, f"{result['table']}@{staged}", branch="audit", batch=batch_id, extra=extra)
        dataset.inputFacets = {"dataQualityAssertions": DataQualityAssertionsDatasetFacet(assertions=assertions)}
        inputs.append(dataset)
    outputs = []
    if result.get("snapshot_id") is not None:
        outputs.append(iceberg_table(catalog, f"{result['table']}@{result['snapshot_id']}", output=True))
    return Lineage(inputs, outputs)


def features_build(result: Mapping[str, Any], *, catalog: str) -> Lineage:
    """Inputs: ``raw`` at the snapshot the build read; output: ``features`` at the snapshot it wrote."""
    table = str(result["features"]).rpartition("@")[0]
    raw = table.rpartition(".")[0] + ".raw"
    inputs = [iceberg_table(catalog, f"{raw}@{result['raw_snapshot']}")] if result.get("raw_snapshot") else []
    return Lineage(inputs, [iceberg_table(catalog, str(result["features"]), output=True)])


def training(result: Mapping[str, Any], *, catalog: str, tracking_uri: str, model_name: str) -> Lineage:
    """Input: the features snapshot; output: the registered model version; run facet: the MLflow run."""
    inputs = [iceberg_table(catalog, str(result["features"]))] if result.get("features") else []
    outputs = []
    if result.get("version"):
        outputs.append(model_version(tracking_uri, model_name, str(result["version"]), runId=result.get("run_id"),
                                     featuresSnapshot=result.get("features")))  # fmt: skip
    facets: dict[str, RunFacet] = {}
    if result.get("run_id"):
        facets["mlopsOps_mlflowRun"] = MlflowRunFacet(str(result["run_id"]), tracking_uri)
    return Lineage(inputs, outputs, facets)


def model_decision(tracking_uri: str, model_name: str, version: str, *, read: bool = True,
                   **details: str | None) -> Lineage:  # fmt: skip
    """Evaluate / approve / promote: the version they judged (input) or changed (output, with the decision)."""
    dataset = model_version(tracking_uri, model_name, version, **details)
    if read:
        return Lineage(inputs=[InputDataset(namespace=dataset.namespace, name=dataset.name, facets=dataset.facets)])
    return Lineage(outputs=[dataset])


def drift_check(result: Mapping[str, Any], *, catalog: str, pipeline: str) -> Lineage:
    """Inputs: the champion's features (reference) and ``raw`` up to the snapshot the window ended at."""
    inputs = []
    if result.get("reference"):
        inputs.append(iceberg_table(catalog, str(result["reference"])))
    if result.get("raw_snapshot"):
        inputs.append(iceberg_table(catalog, f"{pipeline}.raw@{result['raw_snapshot']}"))
    return Lineage(inputs)
