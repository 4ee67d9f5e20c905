"""Read a split of a pinned feature snapshot as a stream of encoded Arrow record batches (bounded memory).

Trainers that stream (``torch_mlp``) never hold a whole split: the encoding is fitted on a sample of the train split
(:data:`FIT_ROWS` rows), the class list and null count come from a pass over the target column alone, and every
epoch reads the split's data files again, in an order shuffled per epoch, one record batch at a time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops_ops.lake.tables import SPLIT_COLUMN

FIT_ROWS = 200_000  # rows the encoding (medians, scales, categories) is fitted on


def split_scan(features: Any, split: str, fields: tuple[str, ...] = ("*",), limit: int | None = None) -> Any:
    return features.table.scan(snapshot_id=features.snapshot_id, row_filter=f"{SPLIT_COLUMN} == '{split}'",
                               selected_fields=fields, limit=limit)  # fmt: skip


def file_batches(scan: Any, tasks: list[Any]) -> Iterator[Any]:
    """The scan's record batches, one data file at a time. (pyiceberg's own readers submit every file to a thread
    pool at once and keep what they read until it is consumed: memory would grow with the number of files.)"""
    from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

    projection = scan.projection()
    schema = schema_to_pyarrow(projection)  # files written by different engines differ (string / large_string)
    reader = ArrowScan(scan.table_metadata, scan.io, projection, scan.row_filter, True, None)
    for task in tasks:
        for batch in reader.to_record_batches([task]):
            yield batch.cast(schema)


def target_values(features: Any, split: str, target: str) -> tuple[list[Any], int, Any]:
    """The distinct values of ``target`` in ``split``, its number of nulls and its Arrow type (one column read)."""
    import pyarrow.compute as pc

    seen: set[Any] = set()
    nulls = 0
    kind = None
    scan = split_scan(features, split, (target,))
    for batch in file_batches(scan, list(scan.plan_files())):
        column = batch.column(0)
        kind = column.type
        nulls += column.null_count
        if len(seen) <= 10_000:  # a continuous target has as many values as rows: stop collecting
            seen.update(v for v in pc.unique(column).to_pylist() if v is not None)
    return sorted(seen, key=lambda v: (str(type(v)), v)), nulls, kind


@dataclass
class SplitStream:
    """``stream(epoch)`` yields ``(x, y)``: the encoded matrix and encoded targets of one record batch at a time."""

    features: Any
    split: str
    kinds: dict[str, str]
    preprocessor: Any
    labels: Any
    target: str
    seed: int = 42

    def __call__(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        import numpy as np

        from mlops_ops.training.serving import prepare

        scan = split_scan(self.features, self.split)
        tasks = list(scan.plan_files())
        random.Random(self.seed + epoch).shuffle(tasks)  # noqa: S311 - an order, not a secret
        for batch in file_batches(scan, tasks):
            if batch.num_rows == 0:
                continue
            frame = batch.to_pandas()
            x = np.asarray(self.preprocessor.transform(prepare(frame, self.kinds)), dtype="float32")
            y = self.labels.encode(frame[self.target])
            if self.labels.classes is not None:  # a label the train split never had cannot be learned
                keep = y >= 0
                x, y = x[keep], y[keep]
            yield x, y
