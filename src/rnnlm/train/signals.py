"""Ctrl-C and SIGTERM during training: stop after the batch under way, so the state saves whole."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from rnnlm.train.learner import Learner

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and kill / a job scheduler's stop


@contextmanager
def interrupt_saves(learner: Learner) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) asks the learner to stop after the batch under way, so its
    state can be saved whole; a second one acts at once, as it would without rnnlm."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        for number, before in previous.items():
            signal.signal(number, before)
        learner.interrupt()

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
