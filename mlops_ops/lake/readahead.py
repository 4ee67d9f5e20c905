"""Bounded read-ahead: produce the next items of an iterator on a thread while the caller works.

Reading an object (network + CSV parsing) and writing Parquet (encoding + compression)
both release the GIL, so overlapping them nearly hides the shorter of the two. The queue
holds at most ``depth`` items, so memory stays bounded by ``depth`` batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced ``depth`` ahead on a worker thread.

    An exception in the producer is raised in the consumer at the position it occurred;
    closing the generator early stops the producer at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(slots, item, stop):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, re-raised there
            _put(slots, _Failure(err), stop)
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's ``with`` blocks (open objects) end on this thread
        _put(slots, _DONE, stop)

    worker = threading.Thread(target=produce, name="mlops-ops-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=30)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(slots: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
