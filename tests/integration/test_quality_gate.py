"""Quality gate (write-audit-publish) on real GX (file context copied from the repo), real Spark, the embedded
S3 and Iceberg catalog, run through factory-built DAGs with dag.test(): clean data is published and feeds
preprocessing; defects go to the quarantine table and nothing downstream sees them; a release publishes them;
a gate that dies mid-way leaves the batch unpublished and the next attempt audits it."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from mlops_ops.cli.main import main as cli
from mlops_ops.lake import batches, transaction
from mlops_ops.stack.services import s3_client
from tests.conftest import ROOT
from tests.integration.churn_data import clean_rows, to_csv
from tests.integration.lake_helpers import committed_rows, new_tables, pipeline_tables


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


def _run(pipeline, dag: str = "ingest"):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(pipeline["dags"]))
    assert bag.import_errors == {}
    run = bag.dags[f"{pipeline['name']}__{dag}"].test()
    return {t.task_id: t.state for t in run.get_task_instances()}, run


def _xcom(run, task_id: str, key: str = "return_value"):  # type: ignore[no-untyped-def]
    ti = next(t for t in run.get_task_instances() if t.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


def test_gate_publishes_clean_data_and_quarantines_defects(stack, pipeline) -> None:  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    tables = pipeline_tables(pipeline["name"])

    client.put_object(Bucket=pipeline["bucket"], Key="in/a.csv", Body=to_csv(clean_rows(1500)))
    states, run = _run(pipeline)
    assert states == {"ingest_s3": "success", "quality_gate": "success"}
    assert _xcom(run, "ingest_s3")["published"] is False  # the source task only staged it
    docs_url = _xcom(run, "quality_gate", "data_docs_url")
    assert docs_url.startswith(f"/mlops-ops/data-docs/{pipeline['name']}/validations/churn_raw/")
    page = Path(pipeline["lake"]) / pipeline["name"] / "_data_docs" / docs_url.split("/", 4)[4]
    assert (
        page.is_file() and "tenure_months" in page.read_text() and "Expectation Validation Result" in page.read_text()
    )
    assert len(committed_rows(tables)) == 1500
    states, training = _run(pipeline, "training")
    assert states == {"preprocess": "success"}
    first_features = _xcom(training, "preprocess")
    assert first_features["mode"] == "full" and sum(first_features["rows"].values()) == 1500

    # defects: nulls in the key, out-of-range tenure, an unknown contract, a missing total (warning only)
    bad = clean_rows(400, start=10_000, seed=3)
    bad[0]["customer_id"] = None
    bad[1]["tenure_months"] = 999
    bad[2]["contract"] = "lifetime"
    for row in bad[3:9]:  # 1.5% missing totals: over the warning's 1% allowance
        row["total_charges"] = None
    client.put_object(Bucket=pipeline["bucket"], Key="in/b.csv", Body=to_csv(bad))
    states, run = _run(pipeline)
    assert states == {"ingest_s3": "success", "quality_gate": "failed"}
    verdicts = _xcom(run, "quality_gate", "quality")
    ((batch, verdict),) = verdicts.items()
    failed = {(f["expectation"], f["column"]) for f in verdict["blocking"]}
    assert failed == {("expect_column_values_to_not_be_null", "customer_id"),
                      ("expect_column_values_to_be_between", "tenure_months"),
                      ("expect_column_values_to_be_in_set", "contract")}  # fmt: skip
    assert {(f["expectation"], f["column"]) for f in verdict["warnings"]} == {
        ("expect_column_values_to_not_be_null", "total_charges")}  # fmt: skip
    tenure = next(f for f in verdict["blocking"] if f["column"] == "tenure_months")
    assert tenure["observed"]["unexpected_count"] == 1 and tenure["observed"]["sample"] == [999]

    # fail-closed: raw's readers never see the batch; its rows are in the quarantine table with the verdict
    assert len(committed_rows(tables)) == 1500
    assert len(committed_rows(tables, "raw_quarantine")) == 400
    (held,) = batches.quarantined(tables)
    assert held["batch"] == batch and held["rows"] == 400 and held["docs"].startswith("validations/churn_raw/")
    # the position moved past it: a re-run finds nothing new and decides nothing twice
    states, _ = _run(pipeline)
    assert states == {"ingest_s3": "skipped", "quality_gate": "skipped"}
    # a manual training run builds from what raw publishes, which did not change: the snapshot is reused
    states, rerun = _run(pipeline, "training")
    assert states == {"preprocess": "success"} and _xcom(rerun, "preprocess")["reused"] is True

    # release with who/why: published to raw with both in the snapshot summary
    assert cli(["quality", "release", "--pipeline", pipeline["name"], "--batch", batch, "--by", "dana",
                "--reason", "lifetime plan is new"]) == 0  # fmt: skip
    summary = transaction.summary_of(transaction.head(tables.load("raw")))
    assert summary["mlops.released-by"] == "dana" and summary["mlops.release-reason"] == "lifetime plan is new"
    assert len(committed_rows(tables)) == 1900 and batches.quarantined(tables) == []
    assert cli(["quality", "release", "--pipeline", pipeline["name"], "--batch", "no-such-batch", "--by", "dana",
                "--reason", "x"]) == 1  # fmt: skip
    # preprocessing now adds just the released rows (incremental)
    states, after = _run(pipeline, "training")
    built = _xcom(after, "preprocess")
    assert built["mode"] == "incremental" and built["rows_in"] == 400
    assert sum(built["rows"].values()) == 1900


def test_a_gate_that_dies_leaves_the_batch_unpublished_and_the_next_attempt_audits_it(
    stack, pipeline, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    client = s3_client(stack.settings)
    tables = pipeline_tables(pipeline["name"])
    client.put_object(Bucket=pipeline["bucket"], Key="in/a.csv", Body=to_csv(clean_rows(800)))
    real = batches.publish

    def killed_after_validation(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise SystemExit("gate process killed between validation and publish")

    monkeypatch.setattr(batches, "publish", killed_after_validation)
    states, _ = _run(pipeline)
    assert states["quality_gate"] == "failed"
    raw = tables.load("raw")
    assert committed_rows(tables) == [] and transaction.pending(raw, "s3") is not None  # staged, not visible
    monkeypatch.setattr(batches, "publish", real)
    client.put_object(Bucket=pipeline["bucket"], Key="in/b.csv", Body=to_csv(clean_rows(100, start=5_000)))
    states, run = _run(pipeline)  # the source task hands on the staged batch; the gate audits and publishes it
    assert states == {"ingest_s3": "success", "quality_gate": "success"}
    assert _xcom(run, "ingest_s3")["resumed"] is True
    assert len(committed_rows(tables)) == 800
    states, _ = _run(pipeline)  # the object that arrived meanwhile comes next
    assert states == {"ingest_s3": "success", "quality_gate": "success"}
    assert len({r["customer_id"] for r in committed_rows(tables)}) == len(committed_rows(tables)) == 900


def test_spark_engine_names_the_same_failures(stack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.gx import GreatExpectationsHook
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.quality import validate_files
    from tests.integration.churn_data import land_batch

    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    tables = new_tables("q")
    rows = clean_rows(300)
    rows[5]["monthly_charges"] = -4.0
    staged = land_batch(stack, tables, to_csv(rows), publish=False)
    raw = tables.load("raw")
    hook = GreatExpectationsHook(gx_root)
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", raw.io, transaction.batch_files(raw, staged), 300,
                                engine="spark", spark=SparkHook(app_name="mlops-ops-tests").get_conn())  # fmt: skip
    assert outcome.engine == "spark" and not outcome.passed
    assert [(f["expectation"], f["column"]) for f in outcome.blocking] == [
        ("expect_column_values_to_be_between", "monthly_charges")]  # fmt: skip
    # too few rows is a blocking failure too
    batches.publish(tables, raw, staged)
    small = land_batch(stack, tables, to_csv(clean_rows(20, start=50_000)), publish=False)
    raw = raw.refresh()
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", raw.io, transaction.batch_files(raw, small), 20,
                                engine="pandas")  # fmt: skip
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
    from mlops_ops.lake.quality import validate_files
    from tests.integration.churn_data import COLUMNS, land_batch

    gx_root = tmp_path / "gx"
    shutil.copytree(ROOT / "great_expectations", gx_root)
    tables = new_tables("q")
    rows = clean_rows(300)
    for row in rows[:10]:
        row["tenure_months"] = "unknown"  # the column is inferred as text
    staged = land_batch(stack, tables, to_csv(rows, [c for c in COLUMNS if c != "contract"]), schema={},
                        publish=False)  # fmt: skip
    raw = tables.load("raw")
    hook = GreatExpectationsHook(gx_root)
    spark = SparkHook(app_name="mlops-ops-tests").get_conn() if engine == "spark" else None
    outcome, _ = validate_files(hook, hook.get_conn(), "churn_raw", raw.io, transaction.batch_files(raw, staged), 300,
                                engine=engine, spark=spark)  # fmt: skip
    failed = {(f["expectation"], str(f["column"])) for f in outcome.blocking}
    assert ("expect_table_columns_to_match_set", "None") in failed
    assert ("expect_column_values_to_be_in_type_list", "tenure_months") in failed
    assert ("expect_column_values_to_be_in_set", "contract") in failed  # the column is missing: the check fails
    assert ("expect_column_values_to_be_in_type_list", "monthly_charges") not in failed
