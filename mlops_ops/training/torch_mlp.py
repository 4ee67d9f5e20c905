"""A tabular MLP in PyTorch for binary, multi-class and regression tasks: CUDA with mixed precision when a GPU is
there, CPU otherwise.

Input is the library's encoded matrix (imputed, one-hot, standardised). Loss: BCE on one logit (binary),
cross-entropy on K logits (multiclass), MSE or Huber (``loss: huber``) on a standardised target (regression; the
saved module maps back to the target's units). With a validation split, training stops after ``patience`` epochs
without a better validation loss and keeps the best epoch's weights. The saved module is a plain
``torch.nn.Sequential`` (loading it needs torch only). Seeds are fixed and deterministic algorithms requested, so two
CPU runs with the same data and parameters give the same weights.
"""

from __future__ import annotations

import copy
from typing import Any

from mlops_ops._extras import require
from mlops_ops.exceptions import TrainingInputError
from mlops_ops.training.trainers import LogMetric, TrainedModel, TrainingData

DEFAULTS: dict[str, Any] = {"hidden": [64, 32], "epochs": 10, "batch_size": 512, "lr": 1e-3, "weight_decay": 0.0,
                            "dropout": 0.0, "seed": 42, "patience": 5, "loss": "mse"}  # fmt: skip


def build_body(n_features: int, hidden: list[int], dropout: float, n_outputs: int) -> Any:
    nn = require("torch", "torch").nn
    layers: list[Any] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def fit_mlp(data: TrainingData, *, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel:
    torch = require("torch", "torch")
    import numpy as np

    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TrainingInputError(
            f"torch_mlp does not take train.params {', '.join(unknown)} (it takes {', '.join(DEFAULTS)})"
        )
    p = {**DEFAULTS, **params}
    seed = int(p["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = data.task
    y_mean, y_std = 0.0, 1.0
    if task == "regression":
        y_mean, y_std = float(np.mean(data.y)), float(np.std(data.y)) or 1.0

    def targets(y: Any) -> Any:
        if task == "multiclass":
            return torch.as_tensor(np.asarray(y), dtype=torch.long)
        if task == "binary":
            return torch.as_tensor(np.asarray(y), dtype=torch.float32)
        return torch.as_tensor((np.asarray(y, dtype="float64") - y_mean) / y_std, dtype=torch.float32)

    n_features = int(np.asarray(data.x).shape[1])
    body = build_body(n_features, list(p["hidden"]), float(p["dropout"]), data.n_outputs).to(device)
    batch_size = int(p["batch_size"])
    shuffle = np.random.default_rng(seed)

    def batches(epoch: int) -> Any:
        """Minibatches of one epoch: from memory (a shuffling DataLoader), or each streamed record batch shuffled."""
        if data.stream is None:
            yield from loader
            return
        for xs, ys in data.stream(epoch):
            order = shuffle.permutation(len(xs))
            for start in range(0, len(xs), batch_size):
                rows = order[start : start + batch_size]
                yield torch.from_numpy(xs[rows]), targets(ys[rows])

    if data.stream is None:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.as_tensor(np.asarray(data.x, dtype="float32")), targets(data.y)),
            batch_size=batch_size,
            shuffle=True,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
        )
    optimizer = torch.optim.AdamW(body.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    loss_fn = _loss_fn(torch, task, str(p["loss"]))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    valid: Any = None
    if data.valid_stream is not None:
        valid = lambda: ((torch.from_numpy(xs), targets(ys)) for xs, ys in data.valid_stream(0))  # noqa: E731
    elif data.x_valid is not None and len(data.x_valid):
        in_memory = (torch.as_tensor(np.asarray(data.x_valid, dtype="float32")), targets(data.y_valid))
        valid = lambda: iter([in_memory])  # noqa: E731
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(int(p["epochs"])):
        body.train()
        total, seen = 0.0, 0
        for xb, yb in batches(epoch):
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                loss = loss_fn(_head(body(xb), task), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(xb)
            seen += len(xb)
        log_metric("train_loss", total / max(seen, 1), epoch)
        if valid is None:
            continue
        val_loss = _evaluate(torch, body, loss_fn, valid(), task, device)
        log_metric("val_loss", val_loss, epoch)
        if val_loss < best - 1e-6:
            best, best_state, stale = val_loss, copy.deepcopy(body.state_dict()), 0
        else:
            stale += 1
            if stale >= int(p["patience"]):
                log_metric("stopped_epoch", float(epoch), epoch)
                break
    if best_state is not None:
        body.load_state_dict(best_state)
        log_metric("best_val_loss", best, 0)
    module = body.to("cpu").eval()
    if task == "regression":  # back to the target's units inside the saved module
        unscale = torch.nn.Linear(1, 1)
        with torch.no_grad():
            unscale.weight.fill_(y_std)
            unscale.bias.fill_(y_mean)
        module = torch.nn.Sequential(*module, unscale).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return TrainedModel(module, "torch")


def _head(out: Any, task: str) -> Any:
    return out if task == "multiclass" else out.squeeze(-1)


def _loss_fn(torch: Any, task: str, loss: str) -> Any:
    if task == "binary":
        return torch.nn.BCEWithLogitsLoss()
    if task == "multiclass":
        return torch.nn.CrossEntropyLoss()
    if loss not in ("mse", "huber"):
        raise TrainingInputError(f"torch_mlp regression loss must be 'mse' or 'huber', not {loss!r}")
    return torch.nn.HuberLoss() if loss == "huber" else torch.nn.MSELoss()


def _evaluate(torch: Any, body: Any, loss_fn: Any, batches: Any, task: str, device: Any) -> float:
    """Mean loss over the validation batches (weighted by their sizes)."""
    body.eval()
    total, seen = 0.0, 0
    with torch.no_grad():
        for xb, yb in batches:
            if len(xb):
                total += float(loss_fn(_head(body(xb.to(device)), task), yb.to(device))) * len(xb)
                seen += len(xb)
    return total / max(seen, 1)
