"""Run one pipeline spec end to end on small data against the embedded stack, isolated from other runs.

Isolation: the pipeline's name gets a unique suffix (so its Iceberg namespace, DAG ids and Assets are
new), its lake folder (Data Docs, reports) moves under the test's folder, its Kafka topics and S3 prefix
get the suffix too (so earlier tests' events and files are not read again), its model name too (so each
test starts with no champion). The DAGs are the ones the factory builds from the spec, run with
``dag.test()`` in this process: every task really runs, against the real services. ``run(dag="pipeline")``
runs the ingest DAG, then the training DAG (what the raw Asset event does in a deployment). Like a
deployed pipeline, the DAGs come from a DAG file: the isolated spec is written as YAML beside a
loader file in a folder of the test's own, which is Airflow's DAG folder for that run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

LOADER = """# Airflow DAG file written by mlops_ops.testing.runner (safe-mode discovery needs "airflow" and "dag")
from pathlib import Path

from mlops_ops.factories.loader import load_pipelines

load_pipelines(globals(), Path(__file__).parent / "pipelines")
"""

if TYPE_CHECKING:
    from mlops_ops.spec import PipelineSpec
    from mlops_ops.stack import EmbeddedStack


@dataclass
class PipelineRun:
    """What the DAG run(s) of one call did: the overall state (the first that is not success), each task's state,
    and access to XComs and the champion. With ``dag="pipeline"`` the ingest and training runs together."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str]
    spec: PipelineSpec
    _task_instances: dict[str, Any] = field(repr=False, default_factory=dict)
    dag_runs: dict[str, str] = field(default_factory=dict)
    """``dag id -> state`` of every DAG run of the call."""

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom; ``None`` for a task that did not succeed (asked of Airflow, that logs an error line)."""
        ti = self._task_instances[task_id]
        if key == "return_value" and str(ti.state) != "success":
            return None
        return ti.xcom_pull(task_ids=task_id, key=key)

    def champion(self) -> str | None:
        """The version behind the model's ``champion`` alias, or ``None`` when nothing was promoted."""
        if self.spec.promote is None:
            return None
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            return str(MlflowClient().get_model_version_by_alias(self.spec.promote.model_name, "champion").version)
        except MlflowException:
            return None


class PipelineRunner:
    def __init__(self, stack: EmbeddedStack, workdir: Path, *, project: Path | None = None) -> None:
        self.stack = stack
        self.workdir = workdir
        self.project = project  # where a Great Expectations context is looked for (default: the spec's folder up)
        self._origin: Path | None = None

    def load(self, spec: str | Path | PipelineSpec, *, isolate: bool = True) -> PipelineSpec:
        """The spec (a path, YAML text or a parsed spec), isolated for this test unless ``isolate=False``.

        A spec read from a file keeps its relative files: a ``preprocess.sql`` path becomes absolute."""
        from mlops_ops.spec import PipelineSpec as Spec
        from mlops_ops.spec_loader import load_spec, parse_spec

        if isinstance(spec, Spec):
            parsed = spec
        elif isinstance(spec, Path) or ("\n" not in spec and spec.endswith((".yaml", ".yml"))):
            path = Path(spec).resolve()
            parsed = load_spec(path)
            self._origin = path.parent
            pre = parsed.preprocess
            if pre is not None and pre.sql and pre.sql.strip().endswith(".sql") and not Path(pre.sql).is_absolute():
                sql = str(path.parent / pre.sql.strip())
                parsed = parsed.model_copy(update={"preprocess": pre.model_copy(update={"sql": sql})})
        else:
            parsed = parse_spec(spec, source="<test spec>")
        return self._isolated(parsed) if isolate else parsed

    def gx_context(self) -> Path | None:
        """A copy, for this test, of the project's Great Expectations context (suites, checkpoints): the first
        ``great_expectations/`` with a ``great_expectations.yml`` in the project folder, or beside the spec or
        above it. Validation results and Data Docs land in the copy."""
        import shutil

        copy = self.workdir / "great_expectations"
        if copy.is_dir():
            return copy
        starts = [p for p in (self.project, self._origin, Path.cwd()) if p is not None]
        for start in starts:
            for folder in (start, *start.resolve().parents):
                found = folder / "great_expectations"
                if (found / "great_expectations.yml").is_file():
                    shutil.copytree(found, copy, ignore=shutil.ignore_patterns("uncommitted"))
                    return copy
        return None

    def _isolated(self, spec: PipelineSpec) -> PipelineSpec:
        suffix = uuid.uuid4().hex[:8]
        changes: dict[str, Any] = {"lake": str(self.workdir / f"lake-{suffix}"),
                                   "pipeline": f"{spec.pipeline[:50]}_{suffix}"}  # fmt: skip
        if spec.source and spec.source.kafka:
            kafka = spec.source.kafka.model_copy(update={"topics": [f"{t}-{suffix}" for t in spec.source.kafka.topics]})
            changes["source"] = spec.source.model_copy(update={"kafka": kafka})
        if spec.source and spec.source.s3:
            prefix = f"{spec.source.s3.prefix.rstrip('/')}/{suffix}/".lstrip("/")
            s3 = spec.source.s3.model_copy(update={"prefix": prefix})
            changes["source"] = spec.source.model_copy(update={"s3": s3})
        if spec.promote:
            changes["promote"] = spec.promote.model_copy(update={"model_name": f"{spec.promote.model_name}-{suffix}"})
        if spec.retrain and spec.retrain.control_topic:  # no watcher runs under dag.test(); keep the topic unique
            topic = f"{spec.retrain.control_topic}-{suffix}"
            changes["retrain"] = spec.retrain.model_copy(update={"control_topic": topic})
        return spec.model_copy(update=changes)

    @property
    def _bootstrap(self) -> str:
        return f"127.0.0.1:{self.stack.settings.ports['kafka']}"

    def ensure_topics(self, spec: PipelineSpec) -> None:
        """Create the spec's Kafka topics (sources, control topic) that do not exist yet (an isolated run's are new)."""
        topics = list(spec.source.kafka.topics) if spec.source and spec.source.kafka else []
        if spec.retrain and spec.retrain.control_topic:
            topics.append(spec.retrain.control_topic)
        if not topics:
            return
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self._bootstrap})
        existing = admin.list_topics(timeout=10).topics
        for topic in topics:
            if topic not in existing:
                admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(10)

    def send_events(self, spec: PipelineSpec, events: Iterable[Mapping[str, Any] | bytes]) -> int:
        """Produce ``events`` (dicts as JSON, or raw bytes) to the spec's first Kafka topic; returns the count."""
        if not (spec.source and spec.source.kafka):
            raise ValueError(f"pipeline '{spec.pipeline}' has no Kafka source to send events to")
        from confluent_kafka import Producer

        self.ensure_topics(spec)
        topic = spec.source.kafka.topics[0]
        producer = Producer({"bootstrap.servers": self._bootstrap})
        count = 0
        for event in events:
            producer.produce(topic, event if isinstance(event, bytes) else json.dumps(event).encode())
            count += 1
            if count % 10_000 == 0:
                producer.flush(30)
        if producer.flush(30) != 0:
            raise RuntimeError(f"could not deliver every event to Kafka topic {topic}")
        return count

    def put_files(self, spec: PipelineSpec, files: Mapping[str, bytes]) -> list[str]:
        """Upload ``files`` (name -> content) under the spec's S3 source prefix; returns their keys."""
        if not (spec.source and spec.source.s3):
            raise ValueError(f"pipeline '{spec.pipeline}' has no S3 source to put files in")
        from mlops_ops.stack.services import s3_client

        client = s3_client(self.stack.settings)
        bucket = spec.source.s3.bucket
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        keys = [f"{spec.source.s3.prefix}{name}" for name in files]
        for key, body in zip(keys, files.values(), strict=True):
            client.put_object(Bucket=bucket, Key=key, Body=body)
        return keys

    def dag_folder(self, spec: PipelineSpec) -> Path:
        """A DAG folder holding this spec (as YAML) and a loader DAG file, as a deployment would have."""
        import yaml

        folder = self.workdir / f"dags-{spec.pipeline}-{uuid.uuid4().hex[:6]}"
        (folder / "pipelines").mkdir(parents=True)
        text = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False)
        (folder / "pipelines" / f"{spec.pipeline}.yaml").write_text(text)
        (folder / "pipelines_dag.py").write_text(LOADER)
        return folder

    def run(
        self,
        spec: str | Path | PipelineSpec,
        *,
        events: Iterable[Mapping[str, Any] | bytes] = (),
        files: Mapping[str, bytes] | None = None,
        dag: str = "pipeline",
        conf: dict[str, Any] | None = None,
        isolate: bool = True,
    ) -> PipelineRun:
        """Seed ``events``/``files``, run the pipeline's ``dag`` once and return the run(s).

        ``dag``: ``pipeline`` (ingest, then training: what a published batch's Asset event starts), ``ingest``,
        ``training`` or ``drift``. Pass a parsed spec from an earlier ``run(...).spec`` with ``isolate=False``
        to run the same isolated pipeline again (new data, a retraining, the drift check).
        """
        import airflow.settings

        from mlops_ops._compat import dag_bag

        DagBag = dag_bag()

        parsed = self.load(spec, isolate=isolate)
        self.ensure_topics(parsed)
        if events:
            self.send_events(parsed, events)
        if files:
            self.put_files(parsed, files)
        names = ["ingest", "training"] if dag == "pipeline" else [dag]
        folder = self.dag_folder(parsed)
        context = self.gx_context() if parsed.quality is not None else None
        saved_gx = os.environ.get("MLOPS_OPS_GX_ROOT")
        if context is not None and saved_gx is None:
            os.environ["MLOPS_OPS_GX_ROOT"] = str(context)
        saved, airflow.settings.DAGS_FOLDER = airflow.settings.DAGS_FOLDER, str(folder)
        instances: dict[str, Any] = {}
        states: dict[str, str] = {}
        last = None
        emitted = False
        try:
            bag = DagBag(dag_folder=str(folder))
            if bag.import_errors:
                raise ValueError(f"pipeline '{parsed.pipeline}' does not load: {bag.import_errors}")
            for name in names:
                if states and not emitted:
                    break  # nothing published that changes raw (failed, skipped): no Asset event, no training run
                dag_id = f"{parsed.pipeline}__{name}"
                if dag_id not in bag.dags:
                    raise ValueError(f"pipeline '{parsed.pipeline}' builds {sorted(bag.dags)}, not {dag_id}")
                dag_obj = bag.dags[dag_id]
                last = dag_obj.test(run_conf=conf if name == "training" else None)
                states[dag_id] = str(last.state)
                tis = last.get_task_instances()
                instances.update({ti.task_id: ti for ti in tis})
                # a task with outlets emits its Asset events when (and only when) it succeeds
                emitted = any(str(ti.state) == "success" and dag_obj.get_task(ti.task_id).outlets for ti in tis)
        finally:
            airflow.settings.DAGS_FOLDER = saved
            if context is not None and saved_gx is None:
                os.environ.pop("MLOPS_OPS_GX_ROOT", None)
        assert last is not None
        state = next((s for s in states.values() if s != "success"), "success")
        return PipelineRun(dag_id=last.dag_id, run_id=last.run_id, state=state,
                           tasks={k: str(ti.state) for k, ti in instances.items()}, spec=parsed,
                           _task_instances=instances, dag_runs=states)  # fmt: skip
