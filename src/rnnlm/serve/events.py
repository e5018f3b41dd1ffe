"""A submitted job's events as the event loop awaits them, and its client watched: a client that
goes away cancels the job in the batcher at once (its streams leave the batch at the next step),
whether the request was waiting for a slot, for its whole answer or between two events."""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from rnnlm.serve.batcher import ModelWorker
from rnnlm.serve.jobs import CompletionJob

GONE = ("gone", None)  # the event a job gets when its client went away


class JobEvents:
    def __init__(self, job: CompletionJob, worker: ModelWorker, receive: Receive):
        self.job, self.worker = job, worker
        self.pending: list[tuple] = []
        self.wake: asyncio.Future | None = None
        self.ended = False  # the job's last event ("done" or "error") has come
        job.deliver = self.deliver
        self.watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        self.watcher.add_done_callback(lambda w: w.cancelled() or self.client_left())

    def submit(self) -> None:
        """Hand the job to the worker (which raises Busy when there is no room)."""
        try:
            self.worker.submit(self.job)
        except BaseException:
            self.watcher.cancel()
            raise

    def deliver(self, event: tuple) -> None:
        self.ended = self.ended or event[0] in ("done", "error")
        self.pending.append(event)
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def next(self) -> list[tuple]:
        """The events delivered since the last call; waits for one."""
        while not self.pending:
            self.wake = asyncio.get_running_loop().create_future()
            await self.wake
        events, self.pending = self.pending, []
        return events

    @property
    def client_gone(self) -> bool:
        return self.job.cancelled

    def client_left(self) -> None:
        if not self.job.cancelled:
            self.worker.cancel(self.job)
            self.deliver(GONE)

    def close(self) -> None:
        """Stop watching the client; a job that has not ended leaves the batch."""
        self.watcher.cancel()
        if not self.ended:
            self.worker.cancel(self.job)


async def wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
