"""Training: the library's torch MLP trainer versus a raw torch loop, its sklearn trainer versus the same pipeline
called directly, and the peak memory of streamed torch training at 1x and 10x the rows.

Each measurement runs in a fresh process (so peak RSS is that side's own), alternating
library and raw, 3 times each; samples/s = rows x epochs / fit time (data already in
memory, model built, the same seed). The library side is ``fit_mlp`` as the training
entrypoint calls it on the encoded matrix (metric logging to a no-op); the raw side is the loop an
engineer would write by hand, importing nothing from the library: the same layer sizes, DataLoader,
AdamW, loss. On CPU here; on a GPU machine the same command measures CUDA with mixed precision (both sides use the
device torch picks). Results go to ``bench/results/training.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_TRAIN_ROWS", "200000"))
FEATURES = 8
PARAMS = {"hidden": [64, 32], "epochs": 3, "batch_size": 512, "lr": 1e-3, "seed": 42}


def _data() -> Any:
    """The encoded matrix and 0/1 targets (what the library's trainers receive after its feature encoding)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    logit = x @ rng.normal(size=FEATURES) + 0.3 * rng.normal(size=ROWS)
    return x, (logit > 0).astype("int64")


def library(data: Any) -> float:
    from mlops_ops.training.torch_mlp import fit_mlp
    from mlops_ops.training.trainers import TrainingData

    x, y = data
    started = time.perf_counter()
    fit_mlp(TrainingData("binary", x, y, None, None, [0, 1]), params=dict(PARAMS), log_metric=lambda *_: None)
    return time.perf_counter() - started


def raw(data: Any) -> float:
    """The loop an engineer writes by hand for the same network (no code of the library)."""
    import torch
    from torch import nn

    x_np, y_np = data
    torch.manual_seed(PARAMS["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    x = torch.from_numpy(x_np)
    y = torch.from_numpy(y_np.astype("float32"))
    model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)).to(device)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=PARAMS["batch_size"],
                                         shuffle=True, pin_memory=device.type == "cuda")  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=PARAMS["lr"])
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(PARAMS["epochs"]):
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                loss = loss_fn(model(xb).squeeze(-1), yb)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def _tabular(rows: int, seed: int = 0) -> Any:
    """Mixed columns as a feature table holds them: numbers with gaps, a category, a flag; a 3-class target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    colour = rng.choice(["red", "green", "blue", "grey"], size=rows)
    flag = rng.random(rows) < 0.5
    score = x[:, 0] + 0.5 * x[:, 1] + np.where(colour == "red", 1.0, 0.0) + np.where(flag, 0.5, -0.5)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(colour=colour, flag=flag)
    frame.loc[::37, "x2"] = np.nan
    frame["label"] = np.where(score > 1, "high", np.where(score > -0.5, "mid", "low"))
    frame["id"] = [f"r{i}" for i in range(rows)]
    return frame


def sklearn_library(frame: Any) -> float:
    """The library's way: choose and encode columns (fit), then its sklearn trainer (the estimator by class path)."""
    import numpy as np

    from mlops_ops.spec import FeaturesSpec
    from mlops_ops.training.data import Labels
    from mlops_ops.training.features import build_preprocessor, select_columns
    from mlops_ops.training.serving import prepare
    from mlops_ops.training.trainers import TrainingData, sklearn_trainer

    started = time.perf_counter()
    spec = FeaturesSpec()
    columns = select_columns(frame, spec, target="label", excluded=("id",))
    labels = Labels.infer("multiclass", frame["label"])
    pre = build_preprocessor(columns, spec, scale=True)
    x = np.asarray(pre.fit_transform(prepare(frame, columns.kinds)), dtype="float32")
    data = TrainingData("multiclass", x, labels.encode(frame["label"]), None, None, labels.classes)
    sklearn_trainer(data, params={"estimator": SKLEARN_ESTIMATOR, **SKLEARN_PARAMS}, log_metric=lambda *_: None)
    return time.perf_counter() - started


def sklearn_direct(frame: Any) -> float:
    """The same model written by hand: a ColumnTransformer (impute + scale numbers, one-hot the category) and the
    same estimator in one Pipeline, fitted on the DataFrame."""
    import importlib

    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    started = time.perf_counter()
    module, _, name = SKLEARN_ESTIMATOR.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)(random_state=42, **SKLEARN_PARAMS)
    numbers = [f"x{i}" for i in range(6)] + ["flag"]
    scale = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    encode = ColumnTransformer([("num", scale, numbers), ("cat", onehot, ["colour"])])
    x = frame[[*numbers, "colour"]].astype({"flag": "float64"})
    make_pipeline(encode, estimator).fit(x, frame["label"])
    return time.perf_counter() - started


SKLEARN_ESTIMATOR = "sklearn.ensemble.HistGradientBoostingClassifier"
SKLEARN_PARAMS = {"max_iter": 100}


def write_table(folder: str, rows: int) -> None:
    """A feature table of ``rows`` rows in a local catalog, written in 200,000-row appends (as builds add files)."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("b", uri=f"sqlite:///{folder}/c.db", warehouse=f"file://{folder}")
    catalog.create_namespace("b")
    table = None
    for start in range(0, rows, 200_000):
        part = _tabular(min(200_000, rows - start), seed=start).assign(_split="train")
        arrow = pa.Table.from_pandas(part, preserve_index=False)
        table = table or catalog.create_table("b.features", schema=arrow.schema)
        table.append(arrow)


def stream_child(folder: str) -> None:
    """Peak RSS of streamed torch training (one epoch) on the table ``write_table`` left in ``folder``."""
    from pyiceberg.catalog.sql import SqlCatalog

    from bench.ingest import peak_rss_mb
    from mlops_ops.spec import ModelSpec
    from mlops_ops.training.data import FeatureSnapshot
    from mlops_ops.training.run import prepare_splits
    from mlops_ops.training.trainers import torch_mlp_trainer

    table = SqlCatalog("b", uri=f"sqlite:///{folder}/c.db", warehouse=f"file://{folder}").load_table("b.features")
    before = peak_rss_mb()
    snap = table.current_snapshot()
    snapshot = FeatureSnapshot("b.features@x", table, snap.snapshot_id, {"mlops.key-column": "id"})
    started = time.perf_counter()
    prepared = prepare_splits(snapshot, ModelSpec(task="multiclass", target="label"), stream=True)
    torch_mlp_trainer(prepared.data, params={"epochs": 1, "hidden": [64, 32]}, log_metric=lambda *_: None)
    seconds = time.perf_counter() - started
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": before, "seconds": seconds}))


def child(side: str) -> None:
    import torch

    data = _data()
    seconds = (library if side == "lib" else raw)(data)
    from bench.ingest import peak_rss_mb

    peak = peak_rss_mb()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(json.dumps({"samples_s": ROWS * PARAMS["epochs"] / seconds, "seconds": seconds, "peak_rss_mb": peak,
                      "device": device, "threads": torch.get_num_threads()}))  # fmt: skip


def _run(side: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.training", "--side", side], cwd=ROOT, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _stream_rss(rows: int) -> dict[str, Any]:
    """The table is written by one process, the training measured in another (its peak is training's own)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "bench.training", "--write", folder, str(rows)], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "bench.training", "--stream", folder], cwd=ROOT, check=True,
                             capture_output=True, text=True)  # fmt: skip
    return {"rows": rows, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> int:
    runs: dict[str, list[dict[str, Any]]] = {"lib": [], "raw": []}
    for i in range(3):
        for side in ("lib", "raw")[:: 1 - 2 * (i % 2)]:
            runs[side].append(_run(side))
    results: dict[str, Any] = {"rows": ROWS, "features": FEATURES, "params": PARAMS, "device": runs["lib"][0]["device"]}
    for side, items in runs.items():
        results[side] = {"samples_s": statistics.median(r["samples_s"] for r in items),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in items)}  # fmt: skip
    results["ratio"] = results["lib"]["samples_s"] / results["raw"]["samples_s"]
    frame = _tabular(int(os.environ.get("BENCH_SKLEARN_ROWS", "200000")))
    times: dict[str, list[float]] = {"library": [], "direct": []}
    for i in range(4):  # the first pair warms imports and caches up and is not counted
        for name, fn in (("library", sklearn_library), ("direct", sklearn_direct))[:: 1 - 2 * (i % 2)]:
            seconds = fn(frame)
            if i:
                times[name].append(seconds)
    results["sklearn"] = {"rows": len(frame), "estimator": SKLEARN_ESTIMATOR, "params": SKLEARN_PARAMS,
                          **{f"{k}_s": statistics.median(v) for k, v in times.items()}}  # fmt: skip
    results["sklearn"]["ratio"] = results["sklearn"]["library_s"] / results["sklearn"]["direct_s"]
    small = int(os.environ.get("BENCH_STREAM_ROWS", "200000"))
    results["stream_rss"] = {"1x": _stream_rss(small), "10x": _stream_rss(small * 10)}
    results["stream_rss"]["ratio"] = (
        results["stream_rss"]["10x"]["peak_rss_mb"] / results["stream_rss"]["1x"]["peak_rss_mb"]
    )
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "training.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--side"]:
        child(sys.argv[2])
    elif sys.argv[1:2] == ["--write"]:
        write_table(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--stream"]:
        stream_child(sys.argv[2])
    else:
        raise SystemExit(main())
