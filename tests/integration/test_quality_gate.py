"""Quality gate on real GX (file context copied from the repo), real Spark and the embedded S3, run through
a factory-built DAG with dag.test(): clean data feeds preprocessing; defects quarantine the batch and stop
everything downstream; a release re-admits it."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from mlops_ops.cli.main import main as cli
from mlops_ops.lake import quarantine
from mlops_ops.lake.catalog import committed_files
from mlops_ops.lake.store import Dataset
from mlops_ops.stack.services import s3_client
from tests.conftest import ROOT
from tests.integration.churn_data import clean_rows, to_csv


@pytest.fixture
def pipeline(stack, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    import airflow.settings

    name = f"q{uuid.uuid4().hex[:6]}"
    bucket = f"qsrc-{uuid.uuid4().hex[:8]}"
    s3_client(stack.settings).create_bucket(Bucket=bucket)
    lake = str(tmp_path / "lake")
    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    monkeypatch.setenv("MLOPS_OPS_GX_ROOT", str(gx_root))
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_pipelines.py", dags)
    (dags / "pipelines" / f"{name}.yaml").write_text(
        f"pipeline: {name}\nlake: {lake}\nretries: 0\n"
        f"source:\n  s3: {{bucket: {bucket}, prefix: in/, glob: '*.csv', format: csv,\n"
        "       schema: {customer_id: string, tenure_months: int, monthly_charges: float, total_charges: float,\n"
        "                contract: string, support_calls: int, churned: bool}}\n"
        "quality: {suite: churn_raw, engine: pandas}\n"
        "preprocess: {transform: 'tests.integration.feature_transforms:churn_features', key_column: customer_id}\n"
    )
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    return {"name": name, "bucket": bucket, "lake": lake, "dags": dags, "gx_root": gx_root}


def _run(pipeline) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(pipeline["dags"]))
    assert bag.import_errors == {}
    run = bag.dags[f"{pipeline['name']}__training"].test()
    return {t.task_id: t.state for t in run.get_task_instances()}, run


def test_gate_passes_clean_data_and_quarantines_defects(stack, pipeline) -> None:  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    raw = Dataset.at(pipeline["lake"], pipeline["name"], "raw")
    features = Dataset.at(pipeline["lake"], pipeline["name"], "features")

    client.put_object(Bucket=pipeline["bucket"], Key="in/a.csv", Body=to_csv(clean_rows(1500)))
    states, run = _run(pipeline)
    assert states == {"ingest_s3": "success", "quality_gate": "success", "preprocess": "success"}
    gate_ti = next(t for t in run.get_task_instances() if t.task_id == "quality_gate")
    docs_url = gate_ti.xcom_pull(task_ids="quality_gate", key="data_docs_url")
    assert docs_url.startswith(f"/mlops-ops/data-docs/{pipeline['name']}/validations/churn_raw/")
    page = Path(pipeline["lake"]) / pipeline["name"] / "_data_docs" / docs_url.split("/", 4)[4]
    assert (
        page.is_file() and "tenure_months" in page.read_text() and "Expectation Validation Result" in page.read_text()
    )
    first_features = features.read_json("_state", "features.json")

    # defects: nulls in the key, out-of-range tenure, an unknown contract, a missing total (warning only)
    bad = clean_rows(400, start=10_000, seed=3)
    bad[0]["customer_id"] = None
    bad[1]["tenure_months"] = 999
    bad[2]["contract"] = "lifetime"
    for row in bad[3:9]:  # 1.5% missing totals: over the warning's 1% allowance
        row["total_charges"] = None
    client.put_object(Bucket=pipeline["bucket"], Key="in/b.csv", Body=to_csv(bad))
    states, run = _run(pipeline)
    assert states == {"ingest_s3": "success", "quality_gate": "failed", "preprocess": "upstream_failed"}
    gate_ti = next(t for t in run.get_task_instances() if t.task_id == "quality_gate")
    verdicts = gate_ti.xcom_pull(task_ids="quality_gate", key="quality")
    ((manifest_uri, verdict),) = verdicts.items()
    failed = {(f["expectation"], f["column"]) for f in verdict["blocking"]}
    assert failed == {("expect_column_values_to_not_be_null", "customer_id"),
                      ("expect_column_values_to_be_between", "tenure_months"),
                      ("expect_column_values_to_be_in_set", "contract")}  # fmt: skip
    assert {(f["expectation"], f["column"]) for f in verdict["warnings"]} == {
        ("expect_column_values_to_not_be_null", "total_charges")}  # fmt: skip
    tenure = next(f for f in verdict["blocking"] if f["column"] == "tenure_months")
    assert tenure["observed"]["unexpected_count"] == 1 and tenure["observed"]["sample"] == [999]

    record = quarantine.status(raw, manifest_uri)
    assert record["state"] == "quarantined" and len(record["history"]) == 1
    admitted = {f["uri"] for f in committed_files(raw, admitted_only=True)}
    everything = {f["uri"] for f in committed_files(raw)}
    assert admitted < everything, "the quarantined batch's files stay in the lake but are not admitted"
    assert features.read_json("_state", "features.json") == first_features, "features must not change"

    # a (manual) re-run finds nothing new: the quarantine stays as it was; preprocessing rebuilds from the admitted
    # data, which is what the first build used, so it reuses that snapshot
    states, rerun = _run(pipeline)
    assert states == {"ingest_s3": "skipped", "quality_gate": "skipped", "preprocess": "success"}
    pre = next(t for t in rerun.get_task_instances() if t.task_id == "preprocess")
    assert pre.xcom_pull(task_ids="preprocess")["reused"] is True
    assert features.read_json("_state", "features.json") == first_features
    assert quarantine.status(raw, manifest_uri) == record

    # release with who/why: the batch is admitted again and a gate over it passes without re-validation
    batch = quarantine.batch_id(manifest_uri)
    assert cli(["quality", "release", "--lake", pipeline["lake"], "--pipeline", pipeline["name"],
                "--batch", batch, "--by", "dana", "--reason", "lifetime plan is new"]) == 0  # fmt: skip
    released = quarantine.status(raw, manifest_uri)
    assert released["state"] == "released" and released["released_by"] == "dana"
    assert [h["event"] for h in released["history"]] == ["quarantined", "released"]
    assert {f["uri"] for f in committed_files(raw, admitted_only=True)} == everything
    assert cli(["quality", "release", "--lake", pipeline["lake"], "--pipeline", pipeline["name"],
                "--batch", "no-such-batch", "--by", "dana", "--reason", "x"]) == 1  # fmt: skip

    # the gate over the released batch (what clearing the failed task does) passes; preprocessing then uses it
    (pipeline["dags"] / "regate.py").write_text(REGATE.format(name=pipeline["name"], lake=pipeline["lake"],
                                                              uri=manifest_uri))  # fmt: skip
    from airflow.dag_processing.dagbag import DagBag

    run = DagBag(dag_folder=str(pipeline["dags"] / "regate.py")).dags["regate"].test()
    states = {t.task_id: t.state for t in run.get_task_instances()}
    assert states == {"quality_gate": "success", "preprocess": "success"}
    rebuilt = features.read_json("_state", "features.json")
    assert rebuilt["run_key"] != first_features["run_key"]
    manifest = features.read_json("manifests", f"{rebuilt['run_key']}.json")
    assert sum(manifest["rows"].values()) > sum(
        features.read_json("manifests", f"{first_features['run_key']}.json")["rows"].values()
    )


REGATE = """
from datetime import datetime

from airflow.sdk import DAG

from mlops_ops.operators.gx import QualityGateOperator
from mlops_ops.operators.spark import SparkPreprocessOperator

with DAG("regate", schedule=None, start_date=datetime(2026, 1, 1)):
    gate = QualityGateOperator(task_id="quality_gate", pipeline="{name}", suite="churn_raw", lake="{lake}",
                               manifest_uris=["{uri}"])
    gate >> SparkPreprocessOperator(task_id="preprocess", pipeline="{name}", lake="{lake}", key_column="customer_id",
                                    transform="tests.integration.feature_transforms:churn_features")
"""


def test_spark_engine_names_the_same_failures(stack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.gx import GreatExpectationsHook
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.catalog import manifest_files
    from mlops_ops.lake.quality import validate_files
    from tests.integration.churn_data import land_batch

    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    raw = Dataset.at(f"s3://mlops-lake/q-{uuid.uuid4().hex[:8]}", "churn", "raw", conn_id="aws_default")
    rows = clean_rows(300)
    rows[5]["monthly_charges"] = -4.0
    uri = land_batch(stack, raw, to_csv(rows))
    hook = GreatExpectationsHook(gx_root)
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", manifest_files(uri), engine="spark",
                                spark=SparkHook(app_name="mlops-ops-tests").get_conn())  # fmt: skip
    assert outcome.engine == "spark" and not outcome.passed
    assert [(f["expectation"], f["column"]) for f in outcome.blocking] == [
        ("expect_column_values_to_be_between", "monthly_charges")]  # fmt: skip
    # too few rows is a blocking failure too
    small = land_batch(stack, raw, to_csv(clean_rows(20, start=50_000)))
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", manifest_files(small), engine="pandas")
    assert [f["expectation"] for f in outcome.blocking] == ["expect_table_row_count_to_be_between"]
    assert outcome.blocking[0]["observed"] == 20


def test_missing_checkpoint_names_the_fix(stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.gx import GreatExpectationsHook

    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    hook = GreatExpectationsHook(gx_root)
    with pytest.raises(LookupError, match=r"checkpoint 'orders\.spark' not found .*mlops-ops gx scaffold orders"):
        hook.checkpoint(hook.get_conn(), "orders", "spark")
    assert json.loads((gx_root / "expectations" / "churn_raw.json").read_text())["name"] == "churn_raw"


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_wrong_types_and_missing_column_fail_the_gate(stack, tmp_path, engine: str) -> None:  # type: ignore[no-untyped-def]
    """A source without a schema keeps what the file holds: the gate, not the ingest, must catch it."""
    from mlops_ops.hooks.gx import GreatExpectationsHook
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.catalog import manifest_files
    from mlops_ops.lake.quality import validate_files
    from tests.integration.churn_data import COLUMNS, land_batch

    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    raw = Dataset.at(str(tmp_path / "lake"), "churn", "raw")
    rows = clean_rows(300)
    for row in rows[:10]:
        row["tenure_months"] = "unknown"  # the column is inferred as text
    uri = land_batch(stack, raw, to_csv(rows, [c for c in COLUMNS if c != "contract"]), schema={})
    hook = GreatExpectationsHook(gx_root)
    spark = SparkHook(app_name="mlops-ops-tests").get_conn() if engine == "spark" else None
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", manifest_files(uri), engine=engine, spark=spark)
    failed = {(f["expectation"], str(f["column"])) for f in outcome.blocking}
    assert ("expect_table_columns_to_match_set", "None") in failed
    assert ("expect_column_values_to_be_in_type_list", "tenure_months") in failed
    assert ("expect_column_values_to_be_in_set", "contract") in failed  # the column is missing: the check fails
    assert ("expect_column_values_to_be_in_type_list", "monthly_charges") not in failed
