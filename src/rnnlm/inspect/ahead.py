"""Making the items of an iterator in a thread, a few ahead of their use.

File reads and numpy's loops release the GIL, so on a machine with two cores the next block of
training text is read, decoded and tokenized while this one is matched."""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
DONE = object()


class Failure:
    def __init__(self, error: BaseException):
        self.error = error


def ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, made in a thread at most ``depth`` ahead; an exception raised
    there is raised here. Leaving early (``close``) stops the thread and closes ``items``."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(DONE)
        except BaseException as e:  # handed to the consumer, who raises it
            put(Failure(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="rnnlm-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is DONE:
                return
            if isinstance(item, Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
