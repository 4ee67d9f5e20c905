"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against `make ui`.

Without Chromium the browser tests skip, unless MLOPS_REQUIRE_BROWSER=1 (CI sets it): then they fail.
Screenshots go to test-artifacts/browser/ (or $MLOPS_SCREENSHOTS).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import stack

__all__ = ["stack"]

CHROMIUM = Path("/usr/bin/chromium")
# headless, no sandbox (containers run as root), and nothing that reaches the network on its own
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--no-first-run", "--metrics-recording-only"]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("MLOPS_SCREENSHOTS", ROOT / "test-artifacts" / "browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (make browser does, as root)"
        if os.environ.get("MLOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # expect()'s own default is 5 s, separate from the pages' 30 s: a loaded 2-core CI machine renders Airflow's
    # first page slower than that (CI: the DAG list drew its rows just past 5 s after the page opened): one timeout
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def ui(stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """`make ui` serving one isolated copy of dags/pipelines/churn.yaml, with 3,000 events waiting in Kafka."""
    from mlops_ops.demo import churn_event
    from mlops_ops.spec import ApprovalSpec
    from mlops_ops.testing.runner import PipelineRunner
    from tests.browser.ui_server import start_ui

    work = tmp_path_factory.mktemp("ui")
    runner = PipelineRunner(stack, work)
    spec = runner.load(ROOT / "dags" / "pipelines" / "churn.yaml")
    assert spec.drift is not None
    # no schedules: only what the browser triggers runs
    spec = spec.model_copy(update={"schedule": None, "drift": spec.drift.model_copy(update={"schedule": None})})
    if spec.retrain is not None:  # churn.yaml retrains on drift or control only; here a published batch trains too
        spec = spec.model_copy(update={"retrain": spec.retrain.model_copy(update={"on_new_data": True})})
    # a person approves each blessed challenger in the Required Actions page (the browser does)
    assert spec.promote is not None
    approval = ApprovalSpec(timeout="2h", approvers=["admin"])
    spec = spec.model_copy(update={"promote": spec.promote.model_copy(update={"approval": approval})})
    rng, now = random.Random(11), datetime.now(UTC)
    runner.send_events(spec, [churn_event(rng, f"c{i:05d}", now) for i in range(3_000)])
    runner.ensure_topics(spec)
    env = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False", "MLOPS_OPS_GX_ROOT": str(ROOT / "great_expectations")}
    server = start_ui(work / "airflow", runner.dag_folder(spec), env=env)
    try:
        yield {"server": server, "spec": spec, "mlflow": f"http://127.0.0.1:{stack.settings.ports['mlflow']}"}
    finally:
        server.stop()
