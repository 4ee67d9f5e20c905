"""Training throughput: the library's torch MLP trainer versus a raw torch loop, same data and model.

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
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "training.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--side"]:
        child(sys.argv[2])
    else:
        raise SystemExit(main())
