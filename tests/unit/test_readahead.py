from __future__ import annotations

import threading
import time

import pytest

from mlops_ops.lake.readahead import read_ahead


def test_yields_every_item_in_order() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_producer_error_is_raised_where_it_happened() -> None:
    def items():
        yield 1
        yield 2
        raise ValueError("bad block at byte 42")

    got = []
    with pytest.raises(ValueError, match="bad block at byte 42"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_producer_stays_at_most_depth_ahead_and_stops_when_consumer_leaves() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def items():
        try:
            for i in range(100):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = read_ahead(items(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)
    # one handed out, two queued, one waiting to be queued
    assert len(produced) <= 4
    stream.close()
    assert closed.wait(5), "the source generator was not closed after the consumer stopped"
    assert len(produced) <= 5
