"""A tabular MLP in PyTorch: CUDA with mixed precision when a GPU is there, CPU otherwise.

The logged module standardises its input itself and takes any float dtype, so
``mlflow.pyfunc`` consumers can pass raw feature rows; for classification it returns the
positive-class probability. Seeds are fixed and deterministic algorithms requested, so
two CPU runs with the same data and parameters give the same weights.
"""

from __future__ import annotations

from typing import Any

from mlops_ops._extras import require
from mlops_ops.training.trainers import LogMetric, Task, TrainedModel

DEFAULTS: dict[str, Any] = {"hidden": [64, 32], "epochs": 10, "batch_size": 512, "lr": 1e-3, "weight_decay": 0.0,
                            "dropout": 0.0, "seed": 42}  # fmt: skip


def build_module(n_features: int, hidden: list[int], dropout: float, task: Task, mean: Any, std: Any) -> Any:
    torch = require("torch", "torch")
    nn = torch.nn

    class TabularMLP(nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            layers: list[Any] = []
            width = n_features
            for size in hidden:
                layers += [nn.Linear(width, size), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
                width = size
            layers.append(nn.Linear(width, 1))
            self.body = nn.Sequential(*layers)
            self.classify = task == "classification"

        def logits(self, x: Any) -> Any:
            return self.body((x.float() - self.mean) / self.std).squeeze(-1)

        def forward(self, x: Any) -> Any:
            out = self.logits(x)
            return torch.sigmoid(out) if self.classify else out

    return TabularMLP()


def fit_mlp(train: Any, validation: Any, *, task: Task, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel:
    torch = require("torch", "torch")
    import numpy as np

    p = {**DEFAULTS, **params}
    torch.manual_seed(int(p["seed"]))
    np.random.seed(int(p["seed"]))
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.as_tensor(train.features.to_numpy(), dtype=torch.float32)
    y = torch.as_tensor(train.target.astype("float32"))
    mean = x.mean(0)
    std = x.std(0).clamp_min(1e-6)
    module = build_module(x.shape[1], list(p["hidden"]), float(p["dropout"]), task, mean, std).to(device)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=int(p["batch_size"]),
        shuffle=True,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(int(p["seed"])),
    )
    optimizer = torch.optim.AdamW(module.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss() if task == "classification" else torch.nn.MSELoss()
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    for epoch in range(int(p["epochs"])):
        module.train()
        total, seen = 0.0, 0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                loss = loss_fn(module.logits(xb), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(xb)
            seen += len(xb)
        log_metric("train_loss", total / max(seen, 1), epoch)
        if validation is not None:
            log_metric("val_loss", _loss(torch, module, loss_fn, validation, device), epoch)
    module = module.to("cpu").eval()

    def predict(features: Any) -> Any:
        with torch.no_grad():
            return module(torch.as_tensor(features.to_numpy(), dtype=torch.float32)).numpy()

    return TrainedModel(module, "pytorch", predict)


def _loss(torch: Any, module: Any, loss_fn: Any, data: Any, device: Any) -> float:
    module.eval()
    with torch.no_grad():
        x = torch.as_tensor(data.features.to_numpy(), dtype=torch.float32, device=device)
        y = torch.as_tensor(data.target.astype("float32"), device=device)
        return float(loss_fn(module.logits(x), y))
